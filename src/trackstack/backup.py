"""Backups of a running stack, and restoring them: MLflow's database and its artifact bucket.

A backup folder holds `postgres.dump` (pg_dump custom format), `artifacts/` (every object of
the bucket, by key) and `manifest.json` with a SHA-256 and size for each file. The folder is
written under a temporary name and renamed when complete, so a half-written backup never
looks like a backup; restore checks every checksum before it changes anything.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from trackstack import database, engine, migrate, stack
from trackstack.engine import Project
from trackstack.errors import TrackstackError
from trackstack.seed import minio_client

MANIFEST = "manifest.json"
DUMP = "postgres.dump"
ARTIFACTS = "artifacts"
FORMAT = 1


class BackupError(TrackstackError):
    """A backup is missing, partial or corrupt: nothing was restored."""


@dataclass(frozen=True)
class Counts:
    runs: int
    experiments: int
    objects: int


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
    objects = sum(1 for _ in client.list_objects(bucket, recursive=True)) if client.bucket_exists(bucket) else 0
    return Counts(runs=runs, experiments=experiments, objects=objects)


def _safe_key_path(root: Path, key: str) -> Path:
    """Where an object key is stored under `root`; refuses keys that would escape it."""
    parts = PurePosixPath(key).parts
    if not parts or any(part in ("..", "") for part in parts) or PurePosixPath(key).is_absolute():
        raise BackupError(f"refusing object key {key!r}: it would leave the backup folder")
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
    (partial / ARTIFACTS).mkdir(parents=True)
    try:
        stack.say(f"dumping database {settings.postgres_db}")
        with (partial / DUMP).open("wb") as out:
            database.dump(project, out)
        client = minio_client(settings)
        keys = [obj.object_name for obj in client.list_objects(settings.mlflow_bucket, recursive=True)]
        stack.say(f"copying {len(keys)} objects of bucket {settings.mlflow_bucket}")
        for key in keys:
            target = _safe_key_path(partial / ARTIFACTS, key)
            client.fget_object(settings.mlflow_bucket, key, str(target))
        files = {DUMP: partial / DUMP} | {
            f"{ARTIFACTS}/{key}": _safe_key_path(partial / ARTIFACTS, key) for key in keys
        }
        manifest = {
            "format": FORMAT,
            "created": stamp,
            "project": settings.compose_project_name,
            "mlflow_version": settings.mlflow_version,
            "database": settings.postgres_db,
            "bucket": settings.mlflow_bucket,
            "files": {name: {"sha256": _sha256(path), "bytes": path.stat().st_size} for name, path in files.items()},
        }
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        partial.rename(final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final


def verify(folder: Path) -> dict[str, Any]:
    """Check a backup folder against its manifest; return the manifest or raise `BackupError`."""
    manifest_path = folder / MANIFEST
    if not folder.is_dir():
        raise BackupError(f"{folder} is not a backup folder")
    if not manifest_path.is_file():
        raise BackupError(f"{folder} has no {MANIFEST}: an incomplete backup; nothing was restored")
    try:
        manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
        files: dict[str, dict[str, Any]] = manifest["files"]
    except (ValueError, KeyError, TypeError) as error:
        raise BackupError(f"{manifest_path} is unreadable ({error}); nothing was restored") from None
    if manifest.get("format") != FORMAT or DUMP not in files:
        raise BackupError(f"{manifest_path} is not a trackstack backup manifest; nothing was restored")
    problems = []
    for name, expected in sorted(files.items()):
        path = _safe_key_path(folder, name)
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif path.stat().st_size != expected["bytes"] or _sha256(path) != expected["sha256"]:
            problems.append(f"{name}: checksum mismatch")
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems[:20])
        raise BackupError(f"{folder} is corrupt or partial; nothing was restored:\n{listing}")
    return manifest


def restore(project: Project, folder: Path) -> Counts:
    """Bring the running stack back to the state in `folder` (verified first)."""
    manifest = verify(folder)
    stack.require_running(project)
    settings = project.settings
    keys = sorted(name.removeprefix(f"{ARTIFACTS}/") for name in manifest["files"] if name.startswith(f"{ARTIFACTS}/"))
    # MLflow holds connections and caches; keep it out of the way while its data is replaced.
    engine.compose(project, "stop", "mlflow")
    try:
        stack.say(f"restoring database {settings.postgres_db}")
        database.psql(project, "DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public;\n")
        with (folder / DUMP).open("rb") as dump:
            database.load(project, dump, database=settings.postgres_db)
        client = minio_client(settings)
        bucket = settings.mlflow_bucket
        if not client.bucket_exists(bucket):
            client.make_bucket(bucket)
        stale = [obj.object_name for obj in client.list_objects(bucket, recursive=True)]
        for key in stale:
            client.remove_object(bucket, key)
        stack.say(f"restoring {len(keys)} objects into bucket {bucket}")
        for key in keys:
            client.fput_object(bucket, key, str(_safe_key_path(folder / ARTIFACTS, key)))
        migrate.after_restore(project)
    finally:
        engine.compose(project, "up", "--detach", "mlflow", capture=True)
        stack.wait_healthy(project)
    return counts(project)
