"""What `invoke urls` and `open` show of a stack deployed to Kubernetes, pure: settings in, links out.

Which endpoint this machine reaches directly (MLflow by its Ingress, NodePort or LoadBalancer) and
which through a `kubectl port-forward` on its `.env` port; `kubeaccess.py` runs the forwards.
"""

from __future__ import annotations

from dataclasses import dataclass

from trackstack.kube import mlflow_service_port, mlflow_url
from trackstack.services import MLFLOW, SERVICES
from trackstack.settings import Settings


def mlflow_needs_forward(settings: Settings) -> bool:
    """A ClusterIP Service without an Ingress: only a port-forward reaches MLflow from outside the cluster."""
    return settings.kube_mlflow_service == "ClusterIP" and not settings.kube_ingress_host


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
    """One endpoint of the deployed stack as this machine reaches it: directly, or through `forward`."""

    title: str
    url: str
    login: str
    browser: bool  # opened by `invoke open`
    forward: Forward | None


def links(settings: Settings) -> list[Link]:
    """Every endpoint, in the service table's order: MLflow at its URL (forwarded on MLFLOW_PORT when
    its Service is a ClusterIP without an Ingress), the others forwarded on their `.env` ports."""
    found = []
    for service in SERVICES:
        for endpoint in service.endpoints:
            login = endpoint.login_with_auth or endpoint.login
            if service is MLFLOW and not mlflow_needs_forward(settings):
                found.append(Link(endpoint.title, mlflow_url(settings), login, endpoint.browser, None))
                continue
            port = settings.ports[endpoint.port_key]
            url = (f"postgresql://{settings.postgres_user}@127.0.0.1:{port}/{settings.postgres_db}"
                   if endpoint.scheme == "postgresql" else f"http://127.0.0.1:{port}")  # fmt: skip
            remote = mlflow_service_port(settings) if service is MLFLOW else endpoint.container_port
            forward = Forward(service.name, port, remote, endpoint.port_key)
            found.append(Link(endpoint.title, url, login, endpoint.browser, forward))
    return found
