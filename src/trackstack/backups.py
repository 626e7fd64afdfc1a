"""Backing up a stack and restoring a backup into one: the same steps on Compose, Swarm and Kubernetes.

A target hands these steps a `StackData`: how it runs psql, pg_dump and pg_restore in its Postgres
container, how it reaches its bucket, and how it stops and starts MLflow. The folder and its
checks are `backup_format`'s, so a backup taken on one target restores on any other.

A restore is all or nothing. The dumps (MLflow's database and, when the backup has it, the
logins database) are loaded into scratch databases while MLflow keeps running. Only then is
MLflow stopped, the backup's objects uploaded (an object they overwrite is kept aside first) and
the scratch databases swapped in by renaming, in one transaction. MLflow starts on the restored
data; only when it is ready are the previous databases, the kept objects and the objects the
backup does not know deleted. Any failure before that undoes every step taken and starts MLflow
on the old data.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from trackstack import database
from trackstack.backup_format import (
    ARTIFACTS,
    AUTH_DUMP,
    DUMP,
    BackupError,
    Counts,
    check_compatible,
    has_logins,
    make_private,
    new_folder,
    object_keys,
    private_file,
    private_folder,
    safe_key_path,
    verify,
    write_manifest,
)
from trackstack.console import say
from trackstack.errors import TrackstackError
from trackstack.settings import Settings
from trackstack.storage import explain, is_storage_failure


class Bucket(Protocol):
    """The stack's artifact bucket, however a target reaches it."""

    def listing(self) -> dict[str, str]:
        """Every object's key and ETag; empty when the bucket does not exist."""
        ...

    def ensure(self) -> None: ...

    def download(self, key: str, path: str) -> None: ...

    def upload(self, key: str, path: str) -> None: ...

    def remove(self, key: str) -> None: ...


class StackData(Protocol):
    """How one target reaches its stack's data: the seam between these steps and the target."""

    @property
    def target(self) -> str:
        """The target's name, written into the manifest."""
        ...

    @property
    def settings(self) -> Settings: ...

    def psql(self, sql: str, *, database: str | None = None) -> str:
        """Run SQL in the Postgres container; psql's unaligned, tuples-only output."""
        ...

    def dump(self, database: str, out: IO[bytes]) -> None:
        """pg_dump `database` (`database.DUMP_OPTIONS`) to `out`."""
        ...

    def load(self, dump: IO[bytes], *, database: str) -> None:
        """pg_restore a dump into `database` (`database.RESTORE_OPTIONS`)."""
        ...

    def bucket(self) -> AbstractContextManager[Bucket]:
        """The bucket, reachable while the block runs."""
        ...

    def stop_mlflow(self) -> None:
        """Stop every MLflow server (and whatever else writes to the data); return when none runs."""
        ...

    def start_mlflow(self) -> None:
        """Start MLflow as it ran before `stop_mlflow`; return when it is ready."""
        ...

    def mlflow_ready(self) -> bool: ...

    def after_swap(self, backup_version: str) -> None:
        """With the restored databases in place and MLflow stopped: what this target's MLflow needs of them
        (an older schema upgraded; the admin's password made the one in .env)."""
        ...

    def data_services_back(self) -> None:
        """Postgres and MinIO running again (they may have stopped during a failed restore)."""
        ...


def _database_counts(data: StackData) -> tuple[int, int]:
    """Runs and experiments in MLflow's database (none before MLflow made its tables)."""
    found = data.psql(
        "SELECT (SELECT count(*) FROM runs), (SELECT count(*) FROM experiments)"
        " WHERE to_regclass('public.runs') IS NOT NULL;\n",
    ).strip()
    runs, experiments = (int(n) for n in found.split("|")) if found else (0, 0)
    return runs, experiments


def counts(data: StackData) -> Counts:
    """How much the stack holds: what a restore would replace and what a backup contains."""
    runs, experiments = _database_counts(data)
    with data.bucket() as bucket:
        objects = len(bucket.listing())
    return Counts(runs=runs, experiments=experiments, objects=objects)


def backup(data: StackData, into: Path) -> Path:
    """Write a complete, checksummed backup folder under `into`; return its path. The stack keeps running."""
    settings = data.settings
    logins = settings.mlflow_auth_db
    with_logins = database.database_exists(data.psql, logins)  # logins on now, or once
    runs, _ = _database_counts(data)
    with new_folder(into, settings.compose_project_name) as (folder, final, stamp):
        say(f"dumping database {settings.postgres_db}")
        with private_file(folder / DUMP) as out:
            data.dump(settings.postgres_db, out)
        if with_logins:
            say(f"dumping the logins database {logins}")
            with private_file(folder / AUTH_DUMP) as out:
                data.dump(logins, out)
        with data.bucket() as bucket:
            keys = sorted(bucket.listing())
            say(f"copying {len(keys)} objects of bucket {settings.mlflow_bucket}")
            for key in keys:
                path = safe_key_path(folder / ARTIFACTS, key)
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                bucket.download(key, str(path))
        write_manifest(folder, settings, stamp=stamp, target=data.target, keys=keys,
                       auth_database=logins if with_logins else None, runs=runs)  # fmt: skip
    return final


def confirm_restore(
    data: StackData, held: Counts, *, yes: bool, ask: Callable[[str], str] = input
) -> None:  # fmt: skip
    """A stack with data is replaced only after a yes: asked on a terminal, `--yes` elsewhere."""
    if held.empty:
        return
    say(f"restore replaces what the {data.target} stack holds: {held.text()}")
    if yes:
        return
    if not sys.stdin.isatty():
        raise TrackstackError(
            "refusing to replace the stack's data without a terminal to confirm on; nothing was restored. "
            "Fix: pass --yes."
        )
    project = data.settings.compose_project_name
    if ask(f"Type the project name ({project}) to replace its data: ").strip() != project:
        raise TrackstackError("restore cancelled; nothing was restored.")


def restore(data: StackData, folder: Path, *, yes: bool, ask: Callable[[str], str] = input) -> Counts:
    """Bring the stack back to the state in `folder`, or leave it exactly as it was."""
    manifest = verify(folder)
    check_compatible(manifest, data.settings)
    confirm_restore(data, counts(data), yes=yes, ask=ask)
    return Restore(data, folder, manifest).run()


@dataclass(frozen=True)
class Swap:
    """One database a restore replaces: loaded into `scratch`, then renamed over `live` (kept as `previous`)."""

    live: str
    dump: str
    scratch: str
    previous: str
    existed: bool = True  # the logins database of a stack that never had logins does not


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

    data: StackData
    folder: Path
    manifest: dict[str, Any]
    swaps: list[Swap] = field(default_factory=list)
    swapped: bool = False
    mlflow_stopped: bool = False
    action: str = "starting"
    bucket: Any = None
    uploaded: list[str] = field(default_factory=list)
    kept: dict[str, Path] = field(default_factory=dict)  # overwritten objects' old bytes, by key
    stale: list[str] = field(default_factory=list)
    keep_dir: Path | None = None

    @property
    def settings(self) -> Settings:
        return self.data.settings

    def run(self) -> Counts:
        with self.data.bucket() as bucket:
            self.bucket = bucket
            try:
                self.swaps = self._swaps()
                self._load_scratch()
                self._stop_mlflow()
                self._upload_objects()
                self.action = "swapping the restored databases in"
                database.rename_databases(self.data.psql, *self._renames_in())
                self.swapped = True
                self.action = "preparing the restored data for this stack's MLflow"
                self.data.after_swap(self.manifest["mlflow_version"])
                self._start_mlflow()
            except BaseException as error:  # every failure, Ctrl-C too, is rolled back
                self._roll_back(error)
            self._clean_up()
        return counts(self.data)

    def _swaps(self) -> list[Swap]:
        db = self.settings.postgres_db
        # Postgres names are at most 63 bytes; these stay within it, and apart, for any valid POSTGRES_DB.
        swaps = [Swap(db, DUMP, f"{db[:40]}_trackstack_restore", f"{db[:40]}_trackstack_previous")]
        logins = self.settings.mlflow_auth_db
        if has_logins(self.manifest):
            existed = database.database_exists(self.data.psql, logins)
            swaps.append(Swap(logins, AUTH_DUMP, f"{db[:35]}_trackstack_auth_restore",
                              f"{db[:35]}_trackstack_auth_previous", existed))  # fmt: skip
            if not self.settings.mlflow_auth:
                say(f"the backup has logins and MLFLOW_AUTH=false here: they are restored into {logins}, "
                    "where MLflow finds them when logins are turned on")  # fmt: skip
        elif database.database_exists(self.data.psql, logins):
            say("the backup has no logins database (an older backup, or of a stack without logins): "
                "the stack's logins stay as they are")  # fmt: skip
        return swaps

    def _renames_in(self) -> list[tuple[str, str]]:
        return [(s.live, s.previous) for s in self.swaps if s.existed] + [(s.scratch, s.live) for s in self.swaps]

    def _renames_back(self) -> list[tuple[str, str]]:
        return [(s.live, s.scratch) for s in self.swaps] + [(s.previous, s.live) for s in self.swaps if s.existed]

    # -- the steps --------------------------------------------------------------------
    def _load_scratch(self) -> None:
        for swap in self.swaps:
            self.action = f"loading {swap.dump} into a scratch database"
            say(f"loading {swap.dump} into scratch database {swap.scratch}")
            database.drop_database(self.data.psql, swap.scratch)  # left over by a killed restore
            database.drop_database(self.data.psql, swap.previous)
            database.create_database(self.data.psql, swap.scratch)
            with (self.folder / swap.dump).open("rb") as dump:
                self.data.load(dump, database=swap.scratch)

    def _stop_mlflow(self) -> None:
        self.action = "stopping MLflow"
        # MLflow holds connections and caches; it must not see the data change under it.
        self.mlflow_stopped = True  # before: a half-done stop is undone by starting it
        self.data.stop_mlflow()

    def _upload_objects(self) -> None:
        bucket = self.bucket
        self.action = f"uploading the backup's objects into bucket {self.settings.mlflow_bucket}"
        bucket.ensure()
        current = bucket.listing()
        keys = object_keys(self.manifest)
        self.stale = sorted(set(current) - set(keys))
        self.keep_dir = Path(tempfile.mkdtemp(prefix="trackstack-restore-"))
        private_folder(self.keep_dir)
        say(f"restoring {len(keys)} objects into bucket {self.settings.mlflow_bucket}")
        for key in keys:
            path = safe_key_path(self.folder / ARTIFACTS, key)
            if key in current and current[key].strip('"') == _md5(path):
                continue  # already the same bytes (a multipart ETag never matches: uploaded again)
            if key in current:
                kept = safe_key_path(self.keep_dir, key)
                kept.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                bucket.download(key, str(kept))
                self.kept[key] = kept
            bucket.upload(key, str(path))
            self.uploaded.append(key)
        make_private(self.keep_dir)

    def _start_mlflow(self) -> None:
        self.action = "starting MLflow on the restored data"
        self.data.start_mlflow()
        self.mlflow_stopped = False

    def _clean_up(self) -> None:
        """After a successful restore: what only the way back needed, and the objects the backup lacks."""
        if self.stale:
            say(
                f"removing {len(self.stale)} objects the backup does not have from bucket {self.settings.mlflow_bucket}"
            )
        for key in self.stale:
            self.bucket.remove(key)
        for swap in self.swaps:
            database.drop_database(self.data.psql, swap.previous)
        if self.keep_dir:
            shutil.rmtree(self.keep_dir, ignore_errors=True)

    # -- the way back -------------------------------------------------------------------
    def _roll_back(self, error: BaseException) -> None:
        reason = _reason(error, self.action)
        say(f"restore failed while {self.action}; putting the stack back as it was")
        failed: list[str] = []
        for step, undo in (
            ("starting Postgres and MinIO", self.data.data_services_back),
            ("swapping the previous databases back", self._databases_back),
            ("putting the previous objects back", self._objects_back),
            ("starting MLflow on the previous data", self._mlflow_back),
        ):
            try:
                undo()
            except Exception as undo_error:  # try every step, report all
                failed.append(f"{step}: {_reason(undo_error, step)}")
        if failed:
            kept = f"; overwritten objects are kept in {self.keep_dir}" if self.kept else ""
            where = ", ".join(s.previous if self.swapped else s.live for s in self.swaps if s.existed)
            raise BackupError(
                f"restore failed ({reason.splitlines()[0]}) and undoing it failed too; the previous data is in "
                f"database {where or self.settings.postgres_db}{kept}. "
                "Fix: bring the stack up (`invoke up` or `invoke deploy`) and retry the restore; "
                "the steps that failed:\n" + "\n".join(f"  - {line}" for line in failed)
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

    def _databases_back(self) -> None:
        if self.swapped:
            database.rename_databases(self.data.psql, *self._renames_back())
            self.swapped = False
        for swap in self.swaps:
            database.drop_database(self.data.psql, swap.scratch)

    def _objects_back(self) -> None:
        for key in reversed(self.uploaded):
            if key in self.kept:
                self.bucket.upload(key, str(self.kept[key]))
            else:
                self.bucket.remove(key)
        self.uploaded.clear()

    def _mlflow_back(self) -> None:
        if self.mlflow_stopped or not self.data.mlflow_ready():
            self._start_mlflow()
