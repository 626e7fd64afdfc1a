"""The backup folder, the same on every target: its files, its manifest, and the checks before a restore.

A backup folder holds `postgres.dump` (pg_dump custom format of MLflow's database), `auth.dump`
(its logins database, when the stack has one), `artifacts/` (every object of the bucket, by key)
and `manifest.json`, with a SHA-256 and size for each file. It is written under a temporary name
and renamed when complete, so a half-written backup never looks like a backup; `verify` checks
every checksum before a restore changes anything. Backups hold every secret MLflow's databases
hold: folders are written 700, files 600.

Format 1 (before the logins were kept) has no `auth.dump`; it still restores.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Protocol

from trackstack.errors import TrackstackError

if TYPE_CHECKING:  # the backup image imports this module without pydantic (Dockerfile.backup.j2)
    from trackstack.settings import Settings

MANIFEST = "manifest.json"
DUMP = "postgres.dump"
AUTH_DUMP = "auth.dump"
ARTIFACTS = "artifacts"
FORMAT = 2
# 1: MLflow's database and the artifacts; 2: and the logins database, when the stack has one.
READABLE_FORMATS = (1, 2)
_VERSION = re.compile(r"\d+\.\d+\.\d+")
_SHA256 = re.compile(r"[0-9a-f]{64}")


# How many runs MLflow's database holds (none before MLflow made its tables).
RUNS_SQL = "SELECT (SELECT count(*) FROM runs) WHERE to_regclass('public.runs') IS NOT NULL;"
# pg_dump as every target runs it: the custom format, which pg_restore loads all or nothing.
DUMP_OPTIONS = ("--format=custom",)


class StackFacts(Protocol):
    """What a manifest says of the stack it was taken of (Settings has it; so has the backup image)."""

    @property
    def compose_project_name(self) -> str: ...

    @property
    def mlflow_version(self) -> str: ...

    @property
    def postgres_db(self) -> str: ...

    @property
    def mlflow_bucket(self) -> str: ...


class BackupError(TrackstackError):
    """A backup is missing, partial or corrupt: nothing was restored."""


@dataclass(frozen=True)
class Counts:
    """What a backup holds, or a restore put back."""

    runs: int
    experiments: int
    objects: int

    @property
    def empty(self) -> bool:
        """Nothing a class made: no run, no object, no experiment but MLflow's Default."""
        return not self.runs and not self.objects and self.experiments <= 1

    def text(self) -> str:
        return f"{self.experiments} experiments, {self.runs} runs, {self.objects} artifact objects"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def safe_key_path(root: Path, key: str) -> Path:
    """Where an object key is stored under `root`; refuses keys that would escape it."""
    parts = PurePosixPath(key).parts
    if not parts or any(part in ("..", "") for part in parts) or PurePosixPath(key).is_absolute():
        raise BackupError(
            f"refusing object key {key!r}: it would leave the backup folder; nothing was restored. "
            "Fix: restore another backup."
        )
    return root.joinpath(*parts)


def private_folder(path: Path) -> None:
    """Create `path` (and missing parents) readable by its owner only."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.chmod(0o700)


def make_private(root: Path) -> None:
    """Folders 700 and files 600 under `root`: the SDK and tools write with the usual umask."""
    for folder, _, names in os.walk(root):
        os.chmod(folder, 0o700)
        for name in names:
            os.chmod(os.path.join(folder, name), 0o600)


def private_file(path: Path) -> Any:
    """A new file only its owner reads, opened for binary writing."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


@contextmanager
def new_folder(into: Path, project: str) -> Iterator[tuple[Path, Path, str]]:
    """A folder to write a backup in, the path it is renamed to (`into/<project>-<time>`) when the block
    ends well, and the time; removed when the block fails."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    final = into / f"{project}-{stamp}"
    partial = into / f".{final.name}.partial"
    if final.exists():
        raise BackupError(f"{final} already exists; wait a second and retry")
    shutil.rmtree(partial, ignore_errors=True)
    private_folder(into)
    private_folder(partial)
    try:
        (partial / ARTIFACTS).mkdir(mode=0o700)
        yield partial, final, stamp
        make_private(partial)
        partial.rename(final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise


def write_manifest(
    folder: Path,
    settings: StackFacts,
    *,
    stamp: str,
    target: str,
    keys: list[str],
    auth_database: str | None,
    runs: int | None = None,
) -> None:
    """The manifest of a backup whose dumps and objects are in `folder` already; `runs`: how many MLflow
    runs its database holds (retention keeps the last backup that has any)."""
    files = {DUMP: folder / DUMP} | ({AUTH_DUMP: folder / AUTH_DUMP} if auth_database else {})
    files |= {f"{ARTIFACTS}/{key}": safe_key_path(folder / ARTIFACTS, key) for key in keys}
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "created": stamp,
        "project": settings.compose_project_name,
        "target": target,  # where it was taken; any target restores it
        "mlflow_version": settings.mlflow_version,
        "database": settings.postgres_db,
        "bucket": settings.mlflow_bucket,
        "files": {name: {"sha256": sha256(path), "bytes": path.stat().st_size} for name, path in files.items()},
    }
    if auth_database:
        manifest["auth_database"] = auth_database
    if runs is not None:
        manifest["runs"] = runs
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8",
                                   newline="\n")  # fmt: skip


def object_keys(manifest: Mapping[str, Any]) -> list[str]:
    prefix = f"{ARTIFACTS}/"
    return sorted(name.removeprefix(prefix) for name in manifest["files"] if name.startswith(prefix))


def has_logins(manifest: Mapping[str, Any]) -> bool:
    """Whether the backup holds a logins database (format 2 with `auth.dump`)."""
    return AUTH_DUMP in manifest["files"]


def _manifest_problem(manifest: object) -> str | None:
    """What is wrong with a parsed manifest's shape, or None."""
    if not isinstance(manifest, dict):
        return "it is not a JSON object"
    if manifest.get("format") not in READABLE_FORMATS:
        return f"its format is {manifest.get('format')!r}, not one of {', '.join(map(str, READABLE_FORMATS))}"
    for key in ("mlflow_version", "bucket", "database"):
        if not isinstance(manifest.get(key), str):
            return f"{key!r} is missing or not text"
    if not _VERSION.fullmatch(manifest["mlflow_version"]):
        return f"mlflow_version {manifest['mlflow_version']!r} is not a release number"
    files = manifest.get("files")
    if not isinstance(files, dict) or DUMP not in files:
        return f"'files' is missing or does not list {DUMP}"
    if (AUTH_DUMP in files) != isinstance(manifest.get("auth_database"), str):
        return f"'auth_database' and the entry of {AUTH_DUMP} come together"
    for name, entry in files.items():
        if not (
            isinstance(entry, dict)
            and isinstance(entry.get("bytes"), int)
            and isinstance(entry.get("sha256"), str)
            and _SHA256.fullmatch(entry["sha256"])
        ):
            return f"the entry of {name!r} lacks a sha256 and a byte count"
    return None


def verify(folder: Path) -> dict[str, Any]:
    """Check a backup folder against its manifest; return the manifest or raise `BackupError`."""
    manifest_path = folder / MANIFEST
    if not folder.is_dir():
        raise BackupError(
            f"{folder} is not a backup folder; nothing was restored. Fix: name a folder `invoke backup` wrote."
        )
    if not manifest_path.is_file():
        raise BackupError(
            f"{folder} has no {MANIFEST}: an incomplete backup; nothing was restored. Fix: restore a complete backup."
        )
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (ValueError, OSError) as error:
        raise BackupError(
            f"{manifest_path} is unreadable ({type(error).__name__}); nothing was restored. "
            "Fix: restore another backup; a manifest is never edited by hand."
        ) from None
    problem = _manifest_problem(manifest)
    if problem:
        raise BackupError(
            f"{manifest_path} is not a trackstack backup manifest ({problem}); nothing was restored. "
            "Fix: restore another backup; a manifest is never edited by hand."
        )
    files: dict[str, dict[str, Any]] = manifest["files"]
    problems = []
    for name, expected in sorted(files.items()):
        path = safe_key_path(folder, name)
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif path.stat().st_size != expected["bytes"] or sha256(path) != expected["sha256"]:
            problems.append(f"{name}: checksum mismatch")
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems[:20])
        raise BackupError(
            f"{folder} is corrupt or partial; nothing was restored. Fix: restore another backup.\n{listing}"
        )
    return dict(manifest)


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def check_compatible(manifest: Mapping[str, Any], settings: Settings) -> None:
    """Refuse a backup of another bucket, or of an MLflow newer than the server's (on any target)."""
    if manifest["bucket"] != settings.mlflow_bucket:
        raise BackupError(
            f"the backup is of bucket {manifest['bucket']}, but .env has MLFLOW_BUCKET={settings.mlflow_bucket}: "
            f"the runs in its database point at s3://{manifest['bucket']}; nothing was restored. "
            f"Fix: set MLFLOW_BUCKET={manifest['bucket']} in .env, apply it (`invoke up` or `invoke deploy`), "
            "then restore."
        )
    if _release(manifest["mlflow_version"]) > _release(settings.mlflow_version):
        raise BackupError(
            f"the backup was written by MLflow {manifest['mlflow_version']}, newer than this stack's "
            f"{settings.mlflow_version}, whose server cannot read a newer database schema; nothing was restored. "
            f"Fix: set MLFLOW_VERSION={manifest['mlflow_version']} (or later) in .env, apply it (`invoke up` or "
            "`invoke deploy`), then restore."
        )
