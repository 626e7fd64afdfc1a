"""Docker Compose on this machine: `invoke up` and everything of the local stack, as one `Target`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from trackstack import auth, backups, database, doctor, engine, tls
from trackstack.auth import Server
from trackstack.backup_format import Counts
from trackstack.console import say
from trackstack.doctor import Check
from trackstack.errors import TrackstackError
from trackstack.project import Project
from trackstack.targets.base import Link, Status, open_in_browser
from trackstack.targets.compose import apply, backup, seed, state, views


@dataclass(frozen=True)
class ComposeTarget:
    """The stack `invoke up` runs with Docker Compose on this machine."""

    project: Project
    name: str = "compose"

    # -- the interface -------------------------------------------------------------------
    def up(self, *, timeout: float, ready: str = "ready:") -> None:
        """Render, build, start, wait until healthy, seed, print the URLs."""
        apply.start(self.project, timeout=timeout)
        say(ready)
        views.print_urls(self.project)

    def down(self) -> None:
        apply.down(self.project)

    def status(self) -> Status:
        return Status(views.STATUS_HEADER, views.status_rows(self.project))

    def links(self) -> list[Link]:
        return views.links(self.project)

    def print_urls(self) -> None:
        views.print_urls(self.project)

    def open_uis(self) -> None:
        open_in_browser(views.browser_urls(self.project))

    def logs(self, service: str, *, follow: bool, tail: int) -> None:
        apply.ensure_rendered(self.project)
        args = ["logs", "--tail", str(tail)] + (["--follow"] if follow else []) + ([service] if service else [])
        engine.compose(self.project, *args, check=False)

    @contextmanager
    def mlflow_server(self) -> Iterator[Server]:
        settings = self.project.settings
        ca = self.project.root / tls.ca_file(settings)
        verify = str(ca) if settings.mlflow_behind_proxy and tls.mode(settings) == "internal" else True
        yield auth.local_server(settings, verify)

    def psql(self, sql: str, *, database: str | None = None) -> str:
        return _psql(self.project, sql, database=database)

    def doctor_checks(self) -> list[Check]:
        return [doctor.check_ports(self.project), *views.exposure(self.project)]

    def artifact_sizes(self) -> dict[str, int]:
        with backup.ComposeData(self.project).bucket() as bucket:
            return bucket.sizes()

    def backup(self, into: Path) -> Path:
        state.require_running(self.project)
        return backup.write(self.project, into)

    def restore(self, path: Path, *, yes: bool) -> Counts:
        state.require_running(self.project)
        return backups.restore(backup.ComposeData(self.project), path, yes=yes)

    def gc(self) -> None:
        state.require_running(self.project)
        apply.gc(self.project)

    # -- what only the local stack does ----------------------------------------------------
    def render(self) -> None:
        apply.render(self.project)

    def build(self, *, force: bool) -> None:
        apply.render(self.project)
        apply.build(self.project, force=force)

    def stop(self) -> None:
        apply.stop(self.project)

    def seed(self) -> None:
        state.require_running(self.project)
        for line in seed.seed(self.project):
            say(line)

    def reset(self, *, yes: bool, backup_into: Path | None, timeout: float = 300) -> None:
        """Delete the volumes (after asking, and a backup when `backup_into`), then start an empty stack."""
        project = self.project
        apply.render(project)
        running = engine.running_services(project) >= {"postgres", "minio"}
        if running:
            summary = backups.counts(backup.ComposeData(project)).text()
        else:
            summary = "contents unknown (the stack is not running)"
        apply.confirm_reset(project, yes=yes, summary=summary)
        if backup_into is not None:
            if not running:
                raise TrackstackError("--backup needs the running stack: run `invoke up` first; nothing was deleted.")
            say(f"backup written to {backup.write(project, backup_into)}")
        deleted = apply.delete_volumes(project)
        say(f"deleted {len(deleted)} volumes: {', '.join(deleted) or '-'}")
        self.up(timeout=timeout, ready="ready (empty):")


_psql = database.psql
