"""A shared server on Docker Swarm (`invoke deploy`), as one `Target`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from trackstack import backups
from trackstack.auth import Server
from trackstack.backup_format import Counts
from trackstack.console import say
from trackstack.doctor import Check
from trackstack.project import Project
from trackstack.targets.base import Link, Status, open_in_browser
from trackstack.targets.swarm import apply, checks, state, views
from trackstack.targets.swarm.backup import SwarmData


@dataclass(frozen=True)
class SwarmTarget:
    """The project's stack deployed to the swarm of the Docker engine in use."""

    project: Project
    name: str = "swarm"

    def up(self, *, timeout: float) -> None:
        apply.deploy(self.project, timeout=timeout)
        say("ready:")
        apply.print_urls(self.project)

    def down(self) -> None:
        apply.undeploy(self.project)

    def status(self) -> Status:
        return Status(apply.STATUS_HEADER, apply.status_rows(self.project) or [])

    def links(self) -> list[Link]:
        return views.links(self.project.settings, state.data_node().address)

    def print_urls(self) -> None:
        apply.print_urls(self.project)

    def open_uis(self) -> None:
        open_in_browser(apply.browser_urls(self.project))

    def logs(self, service: str, *, follow: bool, tail: int) -> None:
        apply.logs(self.project, service, follow=follow, tail=tail)

    @contextmanager
    def mlflow_server(self) -> Iterator[Server]:
        yield apply.server(self.project)

    def psql(self, sql: str, *, database: str | None = None) -> str:
        return apply.psql(self.project, sql, database=database)

    def doctor_checks(self) -> list[Check]:
        return checks.swarm_checks(self.project)

    def artifact_sizes(self) -> dict[str, int]:
        with SwarmData(self.project).bucket() as bucket:
            return bucket.sizes()

    def backup(self, into: Path) -> Path:
        return backups.backup(SwarmData(self.project), into)

    def restore(self, path: Path, *, yes: bool) -> Counts:
        return backups.restore(SwarmData(self.project), path, yes=yes)

    def gc(self) -> None:
        apply.gc(self.project)
