"""Backups of a running stack, and restoring them: MLflow's database and its artifact bucket.

A backup folder holds `postgres.dump` (pg_dump custom format), `artifacts/` (every object of
the bucket, by key) and `manifest.json` with a SHA-256 and size for each file. The folder is
written under a temporary name and renamed when complete, so a half-written backup never
looks like a backup; restore (`restore.py`) checks every checksum before it changes anything.
Backups hold every secret MLflow's database holds: folders are written 700, files 600.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from trackstack import database
from trackstack.console import say
from trackstack.errors import TrackstackError
from trackstack.project import Project
from trackstack.storage import minio_client, minio_errors
from trackstack.targets.base import Counts

MANIFEST = "manifest.json"
DUMP = "postgres.dump"
ARTIFACTS = "artifacts"
FORMAT = 1
_VERSION = re.compile(r"\d+\.\d+\.\d+")
_SHA256 = re.compile(r"[0-9a-f]{64}")


class BackupError(TrackstackError):
    """A backup is missing, partial or corrupt: nothing was restored."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def counts(project: Project) -> Counts:
    """How much the stack holds: what `reset` would delete and what a backup contains."""
    found = database.psql(
        project,
        "SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM experiments)"
        " WHERE to_regclass('public.runs') IS NOT NULL;\n",
    )
    runs, experiments = (int(n) for n in found.split("|")) if found else (0, 0)
    client = minio_client(project.settings)
    bucket = project.settings.mlflow_bucket
    with minio_errors(f"counting the objects of bucket {bucket}"):
        objects = sum(1 for _ in client.list_objects(bucket, recursive=True)) if client.bucket_exists(bucket) else 0
    return Counts(runs=runs, experiments=experiments, objects=objects)


def safe_key_path(root: Path, key: str) -> Path:
    """Where an object key is stored under `root`; refuses keys that would escape it."""
    parts = PurePosixPath(key).parts
    if not parts or any(part in ("..", "") for part in parts) or PurePosixPath(key).is_absolute():
        raise BackupError(
            f"refusing object key {key!r}: it would leave the backup folder; nothing was restored. "
            "Fix: restore another backup."
        )
    return root.joinpath(*parts)


def backup(project: Project, into: Path) -> Path:
    """Write a complete, checksummed backup folder under `into`; return its path (needs Postgres and MinIO)."""
    settings = project.settings
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    final = into / f"{settings.compose_project_name}-{stamp}"
    partial = into / f".{final.name}.partial"
    if final.exists():
        raise BackupError(f"{final} already exists; wait a second and retry")
    shutil.rmtree(partial, ignore_errors=True)
    private_folder(into)
    private_folder(partial)
    try:
        (partial / ARTIFACTS).mkdir(mode=0o700)
        say(f"dumping database {settings.postgres_db}")
        with os.fdopen(os.open(partial / DUMP, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            database.dump(project, out)
        client = minio_client(settings)
        bucket = settings.mlflow_bucket
        with minio_errors(f"copying the objects of bucket {bucket} into the backup"):
            keys = [obj.object_name for obj in client.list_objects(bucket, recursive=True)]
            say(f"copying {len(keys)} objects of bucket {bucket}")
            for key in keys:
                client.fget_object(bucket, key, str(safe_key_path(partial / ARTIFACTS, key)))
        files = {DUMP: partial / DUMP} | {f"{ARTIFACTS}/{key}": safe_key_path(partial / ARTIFACTS, key) for key in keys}
        manifest = {
            "format": FORMAT,
            "created": stamp,
            "project": settings.compose_project_name,
            "mlflow_version": settings.mlflow_version,
            "database": settings.postgres_db,
            "bucket": settings.mlflow_bucket,
            "files": {name: {"sha256": _sha256(path), "bytes": path.stat().st_size} for name, path in files.items()},
        }
        (partial / MANIFEST).write_text(
            json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8", newline="\n"
        )
        make_private(partial)
        partial.rename(final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final


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


def _manifest_problem(manifest: object) -> str | None:
    """What is wrong with a parsed manifest's shape, or None."""
    if not isinstance(manifest, dict):
        return "it is not a JSON object"
    if manifest.get("format") != FORMAT:
        return f"its format is {manifest.get('format')!r}, not {FORMAT}"
    for key in ("mlflow_version", "bucket", "database"):
        if not isinstance(manifest.get(key), str):
            return f"{key!r} is missing or not text"
    if not _VERSION.fullmatch(manifest["mlflow_version"]):
        return f"mlflow_version {manifest['mlflow_version']!r} is not a release number"
    files = manifest.get("files")
    if not isinstance(files, dict) or DUMP not in files:
        return f"'files' is missing or does not list {DUMP}"
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
        elif path.stat().st_size != expected["bytes"] or _sha256(path) != expected["sha256"]:
            problems.append(f"{name}: checksum mismatch")
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems[:20])
        raise BackupError(
            f"{folder} is corrupt or partial; nothing was restored. Fix: restore another backup.\n{listing}"
        )
    return dict(manifest)
