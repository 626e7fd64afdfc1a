"""Restoring a backup all or nothing: on any failure the stack is put back exactly as it was.

The dump is loaded into a scratch database while MLflow keeps running. Only then is MLflow
stopped, the backup's objects uploaded (an object they overwrite is kept aside first) and
the scratch database swapped in by renaming, in one transaction. MLflow starts on the
restored data; only when it is healthy are the previous database, the kept objects and the
objects the backup does not know deleted. Any failure before that undoes every step taken,
starting MinIO or Postgres again if they stopped, and restarts MLflow on the old data.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trackstack import database, engine
from trackstack.console import say
from trackstack.errors import TrackstackError
from trackstack.project import Project
from trackstack.settings import Settings
from trackstack.storage import explain, is_storage_failure, minio_client, minio_errors
from trackstack.targets.base import Counts
from trackstack.targets.compose import migrate
from trackstack.targets.compose.backup import (
    ARTIFACTS,
    DUMP,
    BackupError,
    counts,
    make_private,
    private_folder,
    safe_key_path,
    verify,
)
from trackstack.targets.compose.state import require_running, wait_ready

# How long MLflow may take to become healthy on the restored (or the old) data.
MLFLOW_TIMEOUT = 180


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def check_compatible(manifest: dict[str, Any], settings: Settings) -> None:
    """Refuse a backup of another bucket, or of an MLflow newer than the server's."""
    if manifest["bucket"] != settings.mlflow_bucket:
        raise BackupError(
            f"the backup is of bucket {manifest['bucket']}, but .env has MLFLOW_BUCKET={settings.mlflow_bucket}: "
            f"the runs in its database point at s3://{manifest['bucket']}; nothing was restored. "
            f"Fix: set MLFLOW_BUCKET={manifest['bucket']} in .env, run `invoke up`, then restore."
        )
    if _release(manifest["mlflow_version"]) > _release(settings.mlflow_version):
        raise BackupError(
            f"the backup was written by MLflow {manifest['mlflow_version']}, newer than this stack's "
            f"{settings.mlflow_version}, whose server cannot read a newer database schema; nothing was restored. "
            f"Fix: set MLFLOW_VERSION={manifest['mlflow_version']} (or later) in .env, run `invoke up`, then restore."
        )


def migrate_after_restore(project: Project, backup_version: str) -> None:
    """Bring a database restored from an older MLflow up to this stack's schema.

    Called with MLflow stopped, after the swap and before MLflow starts; a failure here rolls
    the restore back.
    """
    if backup_version != project.settings.mlflow_version:
        say(f"the backup was written by MLflow {backup_version}; checking its schema")
    migrate.after_restore(project)


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _reason(error: BaseException, action: str) -> str:
    if isinstance(error, TrackstackError):
        return str(error)
    if is_storage_failure(error):
        return explain(error, action)
    if isinstance(error, KeyboardInterrupt):
        return "interrupted"
    return f"{type(error).__name__} while {action}"


@dataclass
class Restore:
    """One restore attempt and what it has changed so far, so that it can be undone."""

    project: Project
    folder: Path
    manifest: dict[str, Any]
    scratch: str = ""
    previous: str = ""
    swapped: bool = False
    mlflow_stopped: bool = False
    action: str = "starting"
    uploaded: list[str] = field(default_factory=list)
    kept: dict[str, Path] = field(default_factory=dict)  # overwritten objects' old bytes, by key
    stale: list[str] = field(default_factory=list)
    keep_dir: Path | None = None

    @property
    def settings(self) -> Settings:
        return self.project.settings

    @property
    def keys(self) -> list[str]:
        prefix = f"{ARTIFACTS}/"
        return sorted(name.removeprefix(prefix) for name in self.manifest["files"] if name.startswith(prefix))

    def run(self) -> Counts:
        db = self.settings.postgres_db
        # Postgres names are at most 63 bytes; these stay within it for any valid POSTGRES_DB.
        self.scratch, self.previous = f"{db[:40]}_trackstack_restore", f"{db[:40]}_trackstack_previous"
        try:
            self._load_scratch()
            self._stop_mlflow()
            self._upload_objects()
            self.action = "swapping the restored database in"
            database.rename_databases(self.project, (db, self.previous), (self.scratch, db))
            self.swapped = True
            self.action = "migrating the restored database"
            migrate_after_restore(self.project, self.manifest["mlflow_version"])
            self._start_mlflow()
        except BaseException as error:  # every failure, Ctrl-C too, is rolled back
            self._roll_back(error)
        self._clean_up()
        return counts(self.project)

    # -- the steps --------------------------------------------------------------------
    def _load_scratch(self) -> None:
        self.action = "loading the dump into a scratch database"
        say(f"loading {DUMP} into scratch database {self.scratch}")
        database.drop_database(self.project, self.scratch)  # left over by a killed restore
        database.drop_database(self.project, self.previous)
        database.create_database(self.project, self.scratch)
        with (self.folder / DUMP).open("rb") as dump:
            database.load(self.project, dump, database=self.scratch)

    def _stop_mlflow(self) -> None:
        self.action = "stopping MLflow"
        # MLflow holds connections and caches; it must not see the data change under it.
        engine.compose(self.project, "stop", "mlflow", capture=True)
        self.mlflow_stopped = True

    def _upload_objects(self) -> None:
        bucket = self.settings.mlflow_bucket
        self.action = f"uploading the backup's objects into bucket {bucket}"
        client = minio_client(self.settings)
        with minio_errors(self.action):
            if not client.bucket_exists(bucket):
                client.make_bucket(bucket)
            current = {obj.object_name: obj.etag for obj in client.list_objects(bucket, recursive=True)}
        keys = self.keys
        self.stale = sorted(set(current) - set(keys))
        self.keep_dir = Path(tempfile.mkdtemp(prefix="trackstack-restore-"))
        private_folder(self.keep_dir)
        say(f"restoring {len(keys)} objects into bucket {bucket}")
        for key in keys:
            path = safe_key_path(self.folder / ARTIFACTS, key)
            if key in current and current[key] == _md5(path):
                continue  # already the same bytes (a multipart ETag never matches: uploaded again)
            with minio_errors(self.action):
                if key in current:
                    kept = safe_key_path(self.keep_dir, key)
                    client.fget_object(bucket, key, str(kept))
                    self.kept[key] = kept
                upload(client, bucket, key, path)
            self.uploaded.append(key)
        make_private(self.keep_dir)

    def _start_mlflow(self) -> None:
        self.action = "starting MLflow on the restored data"
        engine.compose(self.project, "up", "--detach", "--no-recreate", "mlflow", capture=True)
        wait_ready(self.project, services=("mlflow",), timeout=MLFLOW_TIMEOUT)
        self.mlflow_stopped = False

    def _clean_up(self) -> None:
        """After a successful restore: what only the way back needed, and the objects the backup lacks."""
        bucket = self.settings.mlflow_bucket
        client = minio_client(self.settings)
        with minio_errors(f"removing {len(self.stale)} objects the backup does not have from bucket {bucket}"):
            for key in self.stale:
                client.remove_object(bucket, key)
        database.drop_database(self.project, self.previous)
        if self.keep_dir:
            shutil.rmtree(self.keep_dir, ignore_errors=True)

    # -- the way back -------------------------------------------------------------------
    def _roll_back(self, error: BaseException) -> None:
        reason = _reason(error, self.action)
        say(f"restore failed while {self.action}; putting the stack back as it was")
        failed: list[str] = []
        for step, undo in (
            ("starting Postgres and MinIO", self._services_back),
            ("swapping the previous database back", self._database_back),
            ("putting the previous objects back", self._objects_back),
            ("starting MLflow on the previous data", self._mlflow_back),
        ):
            try:
                undo()
            except Exception as undo_error:  # try every step, report all
                failed.append(f"{step}: {_reason(undo_error, step)}")
        if failed:
            kept = f"; overwritten objects are kept in {self.keep_dir}" if self.kept else ""
            raise BackupError(
                f"restore failed ({reason.splitlines()[0]}) and undoing it failed too; the previous database "
                f"is {self.previous if self.swapped else self.settings.postgres_db}{kept}. "
                "Fix: run `invoke up` and retry the restore; the steps that failed:\n"
                + "\n".join(f"  - {line}" for line in failed)
            ) from None
        if self.keep_dir:
            shutil.rmtree(self.keep_dir, ignore_errors=True)
        if isinstance(error, KeyboardInterrupt):
            raise error
        first, _, rest = reason.partition("\n")
        raise BackupError(
            f"restore failed; the stack is as it was before and MLflow runs on its previous data. Cause: {first}"
            + (f"\n{rest}" if rest else "")
        ) from None

    def _services_back(self) -> None:
        engine.compose(self.project, "up", "--detach", "--no-recreate", "postgres", "minio", capture=True)
        wait_ready(self.project, services=("postgres", "minio"), timeout=MLFLOW_TIMEOUT)

    def _database_back(self) -> None:
        db = self.settings.postgres_db
        if self.swapped:
            database.rename_databases(self.project, (db, self.scratch), (self.previous, db))
            self.swapped = False
        database.drop_database(self.project, self.scratch)

    def _objects_back(self) -> None:
        bucket = self.settings.mlflow_bucket
        client = minio_client(self.settings)
        with minio_errors(f"putting the previous objects back into bucket {bucket}"):
            for key in reversed(self.uploaded):
                if key in self.kept:
                    upload(client, bucket, key, self.kept[key])
                else:
                    client.remove_object(bucket, key)
        self.uploaded.clear()

    def _mlflow_back(self) -> None:
        if self.mlflow_stopped or not self._mlflow_ready():
            self._start_mlflow()

    def _mlflow_ready(self) -> bool:
        return any(state.service == "mlflow" and state.ready for state in engine.ps(self.project))


def upload(client: Any, bucket: str, key: str, path: Path) -> None:
    """One object into the bucket (a seam for tests that stop MinIO half-way)."""
    client.fput_object(bucket, key, str(path))


def restore(project: Project, folder: Path) -> Counts:
    """Bring the running stack back to the state in `folder`, or leave it exactly as it was."""
    manifest = verify(folder)
    check_compatible(manifest, project.settings)
    require_running(project)
    return Restore(project, folder, manifest).run()
