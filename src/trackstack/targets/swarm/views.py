"""What `urls`, `open` and `logs` show of a stack deployed to Docker Swarm, pure: settings in, URLs
and command lines out (`apply.py` asks the swarm for the data node's address and runs them)."""

from __future__ import annotations

from trackstack.errors import TrackstackError
from trackstack.services import MLFLOW, PROXY, SWARM_SERVICES, swarm_stack
from trackstack.settings import Settings
from trackstack.targets import base
from trackstack.targets.base import Link
from trackstack.targets.swarm.render import mlflow_url, published, service_name


def links(settings: Settings, data_address: str) -> list[Link]:
    """Every endpoint of the deployed stack: MLflow through the proxy, the others on the data node."""
    proxy = PROXY.endpoints[0]
    found = [Link("MLflow UI and API", mlflow_url(settings), proxy.login, proxy.browser)]
    shown = published(settings)
    for service in swarm_stack(settings.artifact_store):
        if service.name in (PROXY.name, MLFLOW.name):
            continue
        for endpoint in service.endpoints:
            scheme = "postgresql" if endpoint.scheme == "postgresql" else "http"
            url = f"{scheme}://{data_address}:{settings.ports[endpoint.port_key]}" if shown[service.name] else None
            found.append(
                Link(endpoint.title, url, endpoint.login, endpoint.browser, f"{service.name.upper()}_BIND_ADDRESS")
            )
    return found


def browser_urls(settings: Settings, data_address: str) -> dict[str, str]:
    """The web UIs `invoke open` opens: only those the stack publishes."""
    return base.browser_urls(links(settings, data_address))


def log_commands(settings: Settings, service: str, *, follow: bool, tail: int) -> list[list[str]]:
    """`docker service logs` of one service of the stack, or of each (Swarm's logs are per service)."""
    names = [s.name for s in SWARM_SERVICES] + (["backup"] if settings.backup_schedule else [])
    names += ["gc"] if settings.mlflow_gc_schedule else []
    if service and service not in names:
        raise TrackstackError(f"no service {service!r} in the deployed stack. Fix: choose one of {', '.join(names)}")
    options = ["--tail", str(tail), *(["--follow"] if follow else [])]
    chosen = [service] if service else names
    return [["docker", "service", "logs", *options, service_name(settings, name)] for name in chosen]
