"""Where scheduled backups go (BACKUP_DEST): a directory or an S3 bucket, its listing and its retention.

A destination holds backup folders in `backup_format`'s layout, each named by its UTC time
(`20261207T030000Z`), plus `verified.json` once the folder was read back and every checksum
matched. A folder being written is not a backup yet: in a directory it has a hidden
`.<name>.partial` name; in a bucket its manifest is uploaded last, and `verified.json` after it.

This module imports only the standard library, `backup_format` and (for a bucket) boto3: the
backup image runs it with Debian's python3 and python3-boto3, and `invoke backups` on the host.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from trackstack.backup_format import MANIFEST, BackupError, make_private, private_folder, verify
from trackstack.errors import TrackstackError

VERIFIED = "verified.json"
STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_STAMP = re.compile(r"\d{8}T\d{6}Z")
_S3_URL = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<prefix>[A-Za-z0-9._/-]*))?")


class DestinationError(TrackstackError):
    """BACKUP_DEST cannot be read or written."""


def destination_problem(value: str) -> str | None:
    """What is wrong with a BACKUP_DEST value, or None."""
    if value.startswith("s3://"):
        match = _S3_URL.fullmatch(value)
        if not match:
            return "not s3://bucket/prefix (an S3 bucket name, then letters, digits, '.', '_', '-' or '/')"
        if any(part in (".", "..") for part in (match["prefix"] or "").split("/")):
            return "its prefix holds '.' or '..' as a folder"
        return None
    if not PurePosixPath(value).is_absolute():
        return "neither s3://bucket/prefix nor an absolute directory path (e.g. /mnt/backups/trackstack)"
    if any(char in value for char in ":,\"'\\"):
        return "a directory path with ':', ',', a quote or a backslash, which a bind mount cannot take"
    return None


def is_s3(value: str) -> bool:
    return value.startswith("s3://")


def stamp(now: datetime) -> str:
    """A backup's name: its UTC time."""
    return now.astimezone(UTC).strftime(STAMP_FORMAT)


def is_backup_name(name: str) -> bool:
    return bool(_STAMP.fullmatch(name))


def created(name: str) -> datetime:
    return datetime.strptime(name, STAMP_FORMAT).replace(tzinfo=UTC)


@dataclass(frozen=True)
class Entry:
    """One backup at the destination, as `invoke backups` shows it."""

    name: str
    bytes: int  # what the manifest lists; 0 without a manifest
    mlflow_version: str  # "" without a readable manifest: an incomplete backup
    verified: bool
    runs: int | None = None  # MLflow runs in its database (None: a manifest that does not say)

    @property
    def created(self) -> datetime:
        return created(self.name)


def entry(name: str, manifest_text: str | None, verified: bool) -> Entry:
    """An entry from a backup's manifest text (None: there is none)."""
    try:
        manifest = json.loads(manifest_text) if manifest_text is not None else {}
        files = manifest.get("files", {}) if isinstance(manifest, dict) else {}
        size = sum(int(f.get("bytes", 0)) for f in files.values() if isinstance(f, dict))
        version = str(manifest.get("mlflow_version", "")) if isinstance(manifest, dict) else ""
        runs = manifest.get("runs") if isinstance(manifest, dict) else None
        runs = runs if isinstance(runs, int) and not isinstance(runs, bool) else None
    except (ValueError, TypeError, AttributeError):
        size, version, runs = 0, "", None
    return Entry(name=name, bytes=size, mlflow_version=version, verified=verified and bool(version), runs=runs)


def newest_first(entries: list[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda e: e.name, reverse=True)


def newest_verified(entries: list[Entry]) -> Entry | None:
    return next((e for e in newest_first(entries) if e.verified), None)


def to_delete(entries: list[Entry], keep: int) -> list[Entry]:
    """What retention removes: verified backups beyond the newest `keep`, and unverified ones older
    than the newest verified (failed or interrupted runs). An unverified backup newer than every
    verified one is never a reason to delete a verified one, and is kept (it may still be written).

    Backups of a stack that lost its data (reset, or redeployed on an empty node) never push out the
    last backup that has runs: while none of the newest `keep` has any, the newest that has is kept too.
    """
    ordered = newest_first(entries)
    verified = [e for e in ordered if e.verified]
    if not verified:
        return []
    newest = verified[0].name
    beyond = verified[keep:]
    if not any(e.runs for e in verified[:keep]):
        with_data = next((e for e in beyond if e.runs), None)
        beyond = [e for e in beyond if e is not with_data]
    return beyond + [e for e in ordered if not e.verified and e.name < newest]


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"  # pragma: no cover - the loop always returns


def listing_text(where: str, entries: list[Entry]) -> str:
    """`invoke backups`: one line a backup, newest first."""
    if not entries:
        return f"no backups at {where}"
    lines = [f"backups at {where} (newest first):", f"  {'time (UTC)':<20} {'size':>9}  {'MLflow':<8}  state"]
    for e in newest_first(entries):
        state = "verified" if e.verified else ("not verified" if e.mlflow_version else "incomplete")
        when = e.created.strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"  {when:<20} {human_size(e.bytes):>9}  {e.mlflow_version or '?':<8}  {state}  ({e.name})")
    return "\n".join(lines)


def verified_marker(now: datetime) -> bytes:
    return (json.dumps({"verified": stamp(now)}) + "\n").encode()


class Destination(Protocol):
    """A place that holds backups: what the runner writes and `invoke backups`/`restore` read."""

    @property
    def where(self) -> str: ...

    def entries(self) -> list[Entry]: ...

    def staging(self, name: str) -> Any:
        """A context manager: a local folder to write backup `name` into; stored when the block ends well."""
        ...

    def fetch(self, name: str, scratch: Path) -> Path:
        """A local folder holding backup `name` (downloaded under `scratch` when remote)."""
        ...

    def mark_verified(self, name: str, now: datetime) -> None: ...

    def delete(self, name: str) -> None: ...


@dataclass(frozen=True)
class DirectoryDestination:
    """Backups as folders of a directory (a local disk, or an NFS or SMB mount of another machine)."""

    root: Path

    @property
    def where(self) -> str:
        return str(self.root)

    def _require(self) -> None:
        if not self.root.is_dir():
            raise DestinationError(
                f"BACKUP_DEST {self.root} is not a directory here. Fix: create (or mount) it, or correct BACKUP_DEST."
            )

    def entries(self) -> list[Entry]:
        self._require()
        found = []
        for folder in self.root.iterdir():
            if not (is_backup_name(folder.name) and folder.is_dir()):
                continue
            manifest = folder / MANIFEST
            text = manifest.read_text(encoding="utf-8") if manifest.is_file() else None
            found.append(entry(folder.name, text, (folder / VERIFIED).is_file()))
        return newest_first(found)

    @contextmanager
    def staging(self, name: str) -> Iterator[Path]:
        self._require()
        for leftover in self.root.glob(".*.partial"):  # of a run that was killed
            shutil.rmtree(leftover, ignore_errors=True)
        partial = self.root / f".{name}.partial"
        private_folder(partial)
        try:
            yield partial
            make_private(partial)
            partial.rename(self.root / name)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise

    def fetch(self, name: str, scratch: Path) -> Path:
        self._require()
        return self.root / name

    def mark_verified(self, name: str, now: datetime) -> None:
        path = self.root / name / VERIFIED
        path.write_bytes(verified_marker(now))
        path.chmod(0o600)

    def delete(self, name: str) -> None:
        if not is_backup_name(name):  # never anything else of the directory
            raise DestinationError(f"refusing to delete {name!r}: not a backup's name")
        shutil.rmtree(self.root / name)


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # "" or ending with "/"

    @classmethod
    def parse(cls, value: str) -> S3Location:
        match = _S3_URL.fullmatch(value)
        if not match:
            raise DestinationError(f"{value!r} is not s3://bucket/prefix")
        prefix = (match["prefix"] or "").strip("/")
        return cls(match["bucket"], f"{prefix}/" if prefix else "")


@dataclass(frozen=True)
class S3Credentials:
    endpoint: str  # "" for AWS
    access_key: str
    secret_key: str
    region: str


class S3Destination:
    """Backups as prefixes of a bucket: `<prefix><name>/<file>`."""

    def __init__(self, location: S3Location, credentials: S3Credentials, client: Any = None) -> None:
        self.location = location
        self.client = client if client is not None else s3_client(credentials)

    @property
    def where(self) -> str:
        return f"s3://{self.location.bucket}/{self.location.prefix}"

    def _key(self, name: str, path: str) -> str:
        return f"{self.location.prefix}{name}/{path}"

    def _get(self, key: str) -> bytes | None:
        try:
            body = self.client.get_object(Bucket=self.location.bucket, Key=key)["Body"]
            return bytes(body.read())
        except self.client.exceptions.NoSuchKey:
            return None

    def _names(self) -> list[str]:
        names = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.location.bucket, Prefix=self.location.prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                name = common["Prefix"][len(self.location.prefix) :].rstrip("/")
                if is_backup_name(name):
                    names.append(name)
        return names

    def _keys(self, name: str) -> list[str]:
        keys = []
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.location.bucket, Prefix=self._key(name, "")):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return keys

    def entries(self) -> list[Entry]:
        found = []
        for name in self._names():
            manifest = self._get(self._key(name, MANIFEST))
            verified = self._get(self._key(name, VERIFIED)) is not None
            found.append(entry(name, manifest.decode("utf-8", "replace") if manifest is not None else None, verified))
        return newest_first(found)

    @contextmanager
    def staging(self, name: str) -> Iterator[Path]:
        folder = Path(tempfile.mkdtemp(prefix="trackstack-backup-"))
        try:
            yield folder
            files = sorted(p for p in folder.rglob("*") if p.is_file() and p != folder / MANIFEST)
            for path in [*files, folder / MANIFEST]:  # the manifest last: without it, no backup
                key = self._key(name, path.relative_to(folder).as_posix())
                self.client.upload_file(str(path), self.location.bucket, key)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def fetch(self, name: str, scratch: Path) -> Path:
        folder = scratch / name
        private_folder(folder)
        prefix = self._key(name, "")
        keys = self._keys(name)
        if not keys:
            raise DestinationError(f"no backup {name} at {self.where}")
        for key in keys:
            relative = key[len(prefix) :]
            if relative == VERIFIED:
                continue
            parts = PurePosixPath(relative).parts
            if not parts or any(part in ("..", "") for part in parts):
                raise BackupError(f"refusing object key {key!r} of the backup: it would leave its folder")
            path = folder.joinpath(*parts)
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self.client.download_file(self.location.bucket, key, str(path))
        make_private(folder)
        return folder

    def mark_verified(self, name: str, now: datetime) -> None:
        self.client.put_object(Bucket=self.location.bucket, Key=self._key(name, VERIFIED), Body=verified_marker(now))

    def delete(self, name: str) -> None:
        if not is_backup_name(name):
            raise DestinationError(f"refusing to delete {name!r}: not a backup's name")
        keys = self._keys(name)
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            chunk = [{"Key": key} for key in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=self.location.bucket, Delete={"Objects": chunk, "Quiet": True})


def s3_client(credentials: S3Credentials, *, path_style: bool = True) -> Any:
    """A boto3 S3 client: path-style addressing (MinIO and most self-hosted stores need it)."""
    import boto3  # only for a bucket: the host imports this module without needing it otherwise
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=credentials.endpoint or None,
        aws_access_key_id=credentials.access_key or None,
        aws_secret_access_key=credentials.secret_key or None,
        region_name=credentials.region,
        config=Config(s3={"addressing_style": "path" if path_style else "auto"}, retries={"mode": "standard"}),
    )


def open_destination(value: str, credentials: S3Credentials) -> Destination:
    if is_s3(value):
        return S3Destination(S3Location.parse(value), credentials)
    return DirectoryDestination(Path(value))


def verify_stored(destination: Destination, name: str, scratch: Path) -> dict[str, Any]:
    """Read backup `name` back from the destination and check every checksum; its manifest."""
    return verify(destination.fetch(name, scratch))


def environment_secret(name: str, environ: Mapping[str, str] | None = None) -> str:
    """A value from `NAME`, or from the file `NAME_FILE` names (Docker and Kubernetes secrets)."""
    env = os.environ if environ is None else environ
    if env.get(f"{name}_FILE"):
        return Path(env[f"{name}_FILE"]).read_text(encoding="utf-8").strip()
    return env.get(name, "")
