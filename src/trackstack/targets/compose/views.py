"""What runs where: the URLs, their login hints and each service's status, all from the service table."""

from __future__ import annotations

import ipaddress

from trackstack import engine
from trackstack.doctor import Check
from trackstack.project import Project
from trackstack.services import SERVICE_OF_PORT
from trackstack.targets import base
from trackstack.targets.base import Link
from trackstack.targets.compose import apply as stack


def links(project: Project) -> list[Link]:
    """Every endpoint in the order of the service table, with its login hint."""
    auth = project.settings.mlflow_auth
    return [
        Link(e.title, project.settings.url(e.port_key), e.login_with_auth if auth and e.login_with_auth else e.login,
             e.browser)
        for service in project.settings.services
        for e in service.endpoints
    ]  # fmt: skip


def exposure(project: Project) -> list[Check]:
    """doctor's "exposure": each endpoint on the host address it is published on (its *_BIND_ADDRESS)."""
    settings = project.settings
    port_of = {e.title: e.port_key for service in settings.services for e in service.endpoints}

    def where(link: Link) -> base.Where:
        bind = settings.bind(SERVICE_OF_PORT[port_of[link.title]])
        beyond = not ipaddress.IPv4Address(bind).is_loopback
        shown = f"{bind}:{settings.ports[port_of[link.title]]}"
        return (f"{shown} (every address of this machine)" if bind == "0.0.0.0" else shown), beyond  # noqa: S104

    return base.exposure_checks(links(project), where)


def urls(project: Project) -> dict[str, str]:
    """Every endpoint's URL by its title, in the order of the service table."""
    return {link.title: link.url for link in links(project) if link.url}


def browser_urls(project: Project) -> dict[str, str]:
    """The web UIs that `invoke open` opens."""
    return base.browser_urls(links(project))


def print_urls(project: Project, *, hints: bool = True) -> None:
    base.print_links(links(project), hints=hints)


STATUS_HEADER = ("SERVICE", "STATE", "HEALTH", "URL", "VOLUME")


def status_rows(project: Project) -> list[tuple[str, ...]]:
    """One row per service: state, health, its first endpoint's URL and its volume's size."""
    stack.ensure_rendered(project)
    by_service = {state.service: state for state in engine.ps(project)}
    sizes = engine.volume_sizes(project)
    rows: list[tuple[str, ...]] = []
    for service in project.settings.services:
        state = by_service.get(service.name)
        size = sizes.get(f"{project.name}_{service.volume.name}", "-") if service.volume else "-"
        rows.append(
            (
                service.name,
                state.state if state else "absent",
                (state.health or "-") if state else "-",
                project.settings.url(service.endpoints[0].port_key),
                size,
            )
        )
    return rows
