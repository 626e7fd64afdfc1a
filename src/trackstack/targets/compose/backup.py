"""How a backup and a restore (`trackstack.backups`) reach the compose stack's data.

Postgres' client tools run in its container (`docker compose exec`) over the local socket, which
the image trusts; MinIO is reached on its published API port with the SDK. MLflow is stopped
during a restore with `docker compose stop` and started again with `up --no-recreate`, whose
start makes the admin's password the one in .env (templates/mlflow/start_with_auth.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from trackstack import backups, database, engine
from trackstack.console import say
from trackstack.project import Project
from trackstack.settings import Settings
from trackstack.storage import MinioBucket
from trackstack.targets.compose import migrate, seed
from trackstack.targets.compose.state import wait_ready

# How long MLflow may take to become healthy on the restored (or the old) data.
MLFLOW_TIMEOUT = 180


@dataclass(frozen=True)
class ComposeData:
    """The compose stack's data, as `trackstack.backups` reaches it."""

    project: Project
    target: str = "compose"

    @property
    def settings(self) -> Settings:
        return self.project.settings

    def psql(self, sql: str, *, database: str | None = None) -> str:
        return _psql(self.project, sql, database=database)

    def dump(self, database: str, out: IO[bytes]) -> None:
        _dump(self.project, out, database=database)

    def load(self, dump: IO[bytes], *, database: str) -> None:
        _load(self.project, dump, database=database)

    @contextmanager
    def bucket(self) -> Iterator[MinioBucket]:
        yield MinioBucket(self.settings)

    def stop_mlflow(self) -> None:
        engine.compose(self.project, "stop", "mlflow", capture=True)

    def start_mlflow(self) -> None:
        engine.compose(self.project, "up", "--detach", "--no-recreate", "mlflow", capture=True)
        wait_ready(self.project, services=("mlflow",), timeout=MLFLOW_TIMEOUT)

    def mlflow_ready(self) -> bool:
        return any(state.service == "mlflow" and state.ready for state in engine.ps(self.project))

    def after_swap(self, backup_version: str) -> None:
        if backup_version != self.settings.mlflow_version:
            say(f"the backup was written by MLflow {backup_version}; checking its schema")
        # The restore loaded as the superuser: the tables go back to MLflow's role before MLflow starts.
        say(seed.grant_database(self.project))
        migrate.after_restore(self.project)

    def data_services_back(self) -> None:
        engine.compose(self.project, "up", "--detach", "--no-recreate", "postgres", "minio", capture=True)
        wait_ready(self.project, services=("postgres", "minio"), timeout=MLFLOW_TIMEOUT)


_psql, _dump, _load = database.psql, database.dump, database.load


def write(project: Project, into: Path) -> Path:
    """A backup of the running compose stack under `into` (`invoke backup`, `reset --backup`, an upgrade)."""
    return backups.backup(ComposeData(project), into)
