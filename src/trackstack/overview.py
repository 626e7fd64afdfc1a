"""What runs where: the URLs, their login hints and each service's status, all from the service table."""

from __future__ import annotations

from trackstack import engine, stack
from trackstack.project import Project
from trackstack.services import ENDPOINTS, SERVICES


def urls(project: Project) -> dict[str, str]:
    """Every endpoint's URL by its title, in the order of the service table."""
    return {endpoint.title: project.settings.url(endpoint.port_key) for endpoint in ENDPOINTS}


def browser_urls(project: Project) -> dict[str, str]:
    """The web UIs that `invoke open` opens."""
    return {endpoint.title: project.settings.url(endpoint.port_key) for endpoint in ENDPOINTS if endpoint.browser}


def print_urls(project: Project, *, hints: bool = True) -> None:
    links = urls(project)
    auth = project.settings.mlflow_auth
    logins = {e.title: (e.login_with_auth if auth and e.login_with_auth else e.login) for e in ENDPOINTS}
    width = max(len(name) for name in links)
    url_width = max(len(url) for url in links.values())
    for name, url in links.items():
        hint = f"  {logins[name]}" if hints else ""
        print(f"  {name:<{width}}  {url:<{url_width}}{hint}".rstrip(), flush=True)


STATUS_HEADER = ("SERVICE", "STATE", "HEALTH", "URL", "VOLUME")


def status_rows(project: Project) -> list[tuple[str, ...]]:
    """One row per service: state, health, its first endpoint's URL and its volume's size."""
    stack.ensure_rendered(project)
    by_service = {state.service: state for state in engine.ps(project)}
    sizes = engine.volume_sizes(project)
    rows: list[tuple[str, ...]] = []
    for service in SERVICES:
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
