"""The interface every target implements (Compose, Swarm, Kubernetes), and the shapes they share:
a status table, links to the services, a port-forward (and `Counts`, from the backup format).

A new capability is one method here and one per target, in that target's package; a target that
cannot do it yet raises `unsupported(...)`: one line naming the target and what to do instead.
"""

from __future__ import annotations

import ipaddress
import webbrowser
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from trackstack.auth import Server
from trackstack.backup_format import Counts
from trackstack.console import say, table
from trackstack.doctor import EXPOSURE, Check
from trackstack.errors import TrackstackError
from trackstack.project import Project


@dataclass(frozen=True)
class Status:
    """`invoke status`: a header and one row per service or workload; no rows: nothing deployed."""

    header: tuple[str, ...]
    rows: list[tuple[str, ...]]

    def text(self) -> str:
        return table([self.header, *self.rows]) if self.rows else "nothing deployed"


@dataclass(frozen=True)
class Forward:
    """A `kubectl port-forward` of one Service port to a port on 127.0.0.1 (0: one kubectl picks)."""

    service: str
    local_port: int
    remote_port: int
    key: str = ""  # the `.env` key of the local port

    @property
    def spec(self) -> str:
        return f"{self.local_port or ''}:{self.remote_port}"


@dataclass(frozen=True)
class Link:
    """One endpoint of the stack as this machine reaches it, for `invoke urls` and `open`."""

    title: str
    url: str | None  # None: not published (`publish_with` says how to publish it)
    login: str  # where the login comes from: names of `.env` keys, never their values
    browser: bool  # opened by `invoke open`
    publish_with: str = ""  # the .env key that publishes it, when it is not
    forward: Forward | None = None  # reached through this port-forward (Kubernetes)


def print_links(links: Sequence[Link], *, hints: bool = True) -> None:
    """The links as aligned lines: title, URL (or how to publish it) and, with `hints`, the login."""
    where = {link.title: link.url or f"not published ({link.publish_with}=0.0.0.0 publishes it on the data node)"
             for link in links}  # fmt: skip
    width = max(len(link.title) for link in links)
    url_width = max(len(text) for text in where.values())
    for link in links:
        hint = f"  {link.login}" if hints else ""
        print(f"  {link.title:<{width}}  {where[link.title]:<{url_width}}{hint}".rstrip(), flush=True)


def browser_urls(links: Sequence[Link]) -> dict[str, str]:
    """The web UIs that `invoke open` opens: those published."""
    return {link.title: link.url for link in links if link.browser and link.url}


def open_in_browser(urls: dict[str, str], open_url: Callable[[str], bool] = webbrowser.open) -> None:
    for name, url in urls.items():
        say(f"opening {name}: {url}")
        if not open_url(url):
            say(f"no browser found here; open {url} yourself")


# Where an endpoint is published, as a text, and whether that reaches beyond this machine.
Where = tuple[str, bool]


def url_address(link: Link) -> Where:
    """Where a link's URL is published: its host and port (a port-forward listens on this machine only)."""
    parts = urlsplit(link.url or "")
    port = parts.port or {"https": 443, "http": 80, "postgresql": 5432}.get(parts.scheme, 0)
    address = f"{parts.hostname}:{port}"
    if link.forward is not None:
        return f"{address} (kubectl port-forward, while a task runs)", False
    return address, not _is_loopback(parts.hostname or "")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def exposure_checks(links: Sequence[Link], where: Callable[[Link], Where] = url_address) -> list[Check]:
    """One check per endpoint: where it is published and what it is behind (TLS: an https URL; a login:
    its login hint). A warning where a login or everything crosses the network unencrypted."""
    checks = []
    for link in links:
        name = f"{EXPOSURE}: {link.title}"
        if link.url is None:
            checks.append(Check(name, "ok", f"not published (set {link.publish_with}=0.0.0.0 to publish it)"))
            continue
        address, beyond = where(link)
        tls = urlsplit(link.url).scheme == "https"
        login = not link.login.startswith("no login")
        behind = " and ".join([*(["TLS"] if tls else []), *(["a login"] if login else [])]) or "nothing"
        detail = f"{link.url} on {address}, behind {behind}"
        if beyond and not tls:
            reason = "its login crosses the network unencrypted" if login else "anyone who reaches it is let in"
            fix = "terminate TLS in front of it, or publish it on 127.0.0.1 only"
            checks.append(Check(name, "warn", f"{detail}: {reason}", fix))
        else:
            checks.append(Check(name, "ok", detail))
    return checks


def unsupported(target: str, task: str, instead: str) -> TrackstackError:
    """The one line a target says for a task it cannot do yet."""
    return TrackstackError(f"`invoke {task}` is not available on {target} yet: {instead}")


class Target(Protocol):
    """What the tasks do on a stack, whichever orchestrator runs it."""

    @property
    def name(self) -> str:
        """ "compose", "swarm" or "kubernetes", as its messages name it."""
        ...

    @property
    def project(self) -> Project: ...

    def up(self, *, timeout: float) -> None:
        """Bring the stack up (Compose: start; Swarm, Kubernetes: deploy), wait, print the URLs."""
        ...

    def down(self) -> None:
        """Remove the stack's containers (Compose: down; Swarm, Kubernetes: undeploy); keep the data."""
        ...

    def status(self) -> Status: ...

    def links(self) -> list[Link]: ...

    def print_urls(self) -> None: ...

    def open_uis(self) -> None: ...

    def logs(self, service: str, *, follow: bool, tail: int) -> None: ...

    def mlflow_server(self) -> AbstractContextManager[Server]:
        """MLflow and its logins database as `invoke user.*` reach them, while the block runs."""
        ...

    def psql(self, sql: str, *, database: str | None = None) -> str:
        """Run SQL in the stack's Postgres; psql's unaligned output."""
        ...

    def doctor_checks(self) -> list[Check]: ...

    def artifact_sizes(self) -> dict[str, int]:
        """Every object of the artifact bucket with its size in bytes (`invoke report`)."""
        ...

    def backup(self, into: Path) -> Path:
        """Write a backup folder (`trackstack.backup_format`) of the running stack under `into`."""
        ...

    def restore(self, path: Path, *, yes: bool) -> Counts:
        """Replace the stack's data with a backup's, all or nothing; a stack with data only with `yes` or
        a yes on the terminal."""
        ...

    def gc(self) -> None:
        """Run `mlflow gc` once now in the stack (`trackstack.mlflow_gc`): runs deleted more than
        MLFLOW_GC_OLDER_THAN ago are removed for good, with their artifacts."""
        ...


def server_of(server: Server) -> Iterator[Server]:
    """A `Target.mlflow_server` body for a server that needs nothing kept open."""
    yield server
