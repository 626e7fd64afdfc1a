"""A stack's data in memory, behind the `StackData` seam: databases (name -> content), a bucket and MLflow.

It understands the SQL `trackstack.database` and `trackstack.backups` send, so that the shared backup and
restore steps run unchanged against it; each target's own seam is tested with a fake engine or kubectl.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from trackstack.settings import Settings


@dataclass
class FakeBucket:
    objects: dict[str, bytes]
    fail_upload: Callable[[str], None] = lambda key: None

    def listing(self) -> dict[str, str]:
        return {key: hashlib.md5(data, usedforsecurity=False).hexdigest() for key, data in self.objects.items()}

    def ensure(self) -> None:
        pass

    def download(self, key: str, path: str) -> None:
        Path(path).write_bytes(self.objects[key])

    def upload(self, key: str, path: str) -> None:
        self.fail_upload(key)
        self.objects[key] = Path(path).read_bytes()

    def remove(self, key: str) -> None:
        del self.objects[key]


@dataclass
class FakeStack:
    settings: Settings
    databases: dict[str, str] = field(default_factory=dict)  # name -> what a dump of it holds
    objects: dict[str, bytes] = field(default_factory=dict)
    runs: int = 0
    mlflow_running: bool = True
    events: list[str] = field(default_factory=list)
    target: str = "fake"
    fail_after_swap: bool = False
    fail_upload: Callable[[str], None] = lambda key: None

    def psql(self, sql: str, *, database: str | None = None) -> str:
        if match := re.fullmatch(r'CREATE DATABASE "(.+)";\n', sql):
            self.databases[match[1]] = ""
            return ""
        if match := re.fullmatch(r'DROP DATABASE IF EXISTS "(.+)" WITH \(FORCE\);\n', sql):
            self.databases.pop(match[1], None)
            return ""
        if match := re.fullmatch(r"SELECT 1 FROM pg_database WHERE datname = '(.+)';\n", sql):
            return "1" if match[1] in self.databases else ""
        if sql.startswith("BEGIN;"):
            renames = re.findall(r'ALTER DATABASE "(.+?)" RENAME TO "(.+?)";', sql)
            for old, new in renames:
                assert old in self.databases, (old, self.databases)
                assert new not in self.databases, (new, self.databases)
                self.databases[new] = self.databases.pop(old)
            self.events.append("rename " + ", ".join(f"{old}->{new}" for old, new in renames))
            return ""
        if "count(*) FROM runs" in sql:
            return f"{self.runs}|{1 + self.runs}"
        raise AssertionError(f"unexpected SQL: {sql!r}")

    def dump(self, database: str, out: IO[bytes]) -> None:
        out.write(f"PGDMP {self.databases[database]}".encode())

    def load(self, dump: IO[bytes], *, database: str) -> None:
        self.databases[database] = dump.read().decode().removeprefix("PGDMP ")

    @contextmanager
    def bucket(self) -> Iterator[FakeBucket]:
        yield FakeBucket(self.objects, self.fail_upload)

    def stop_mlflow(self) -> None:
        self.events.append("stop mlflow")
        self.mlflow_running = False

    def start_mlflow(self) -> None:
        self.events.append("start mlflow")
        self.mlflow_running = True

    def mlflow_ready(self) -> bool:
        return self.mlflow_running

    def after_swap(self, backup_version: str) -> None:
        self.events.append(f"after swap {backup_version}")
        if self.fail_after_swap:
            raise RuntimeError("the schema upgrade failed")

    def data_services_back(self) -> None:
        self.events.append("data services back")
