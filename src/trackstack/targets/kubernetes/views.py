"""What `invoke urls` and `open` show of a stack deployed to Kubernetes, pure: settings in, links out.

Which endpoint this machine reaches directly (MLflow by its Ingress, NodePort or LoadBalancer) and
which through a `kubectl port-forward` on its `.env` port; `access.py` runs the forwards.
"""

from __future__ import annotations

from trackstack.doctor import Check
from trackstack.services import MLFLOW
from trackstack.settings import Settings
from trackstack.targets.base import Forward, Link, Where, exposure_checks, url_address

__all__ = ["Forward", "Link", "links", "mlflow_needs_forward"]  # the shapes its links come in, too
from trackstack.targets.kubernetes.render import mlflow_service_port, mlflow_url


def mlflow_needs_forward(settings: Settings) -> bool:
    """A ClusterIP Service without an Ingress: only a port-forward reaches MLflow from outside the cluster."""
    return settings.kube_mlflow_service == "ClusterIP" and not settings.kube_ingress_host


def links(settings: Settings) -> list[Link]:
    """Every endpoint, in the service table's order: MLflow at its URL (forwarded on MLFLOW_PORT when
    its Service is a ClusterIP without an Ingress), the others forwarded on their `.env` ports."""
    found = []
    for service in settings.services:
        for endpoint in service.endpoints:
            login = endpoint.login_with_auth or endpoint.login
            if service is MLFLOW and not mlflow_needs_forward(settings):
                found.append(Link(endpoint.title, mlflow_url(settings), login, endpoint.browser))
                continue
            port = settings.ports[endpoint.port_key]
            url = (f"postgresql://{settings.postgres_user}@127.0.0.1:{port}/{settings.postgres_db}"
                   if endpoint.scheme == "postgresql" else f"http://127.0.0.1:{port}")  # fmt: skip
            remote = mlflow_service_port(settings) if service is MLFLOW else endpoint.container_port
            forward = Forward(service.name, port, remote, endpoint.port_key)
            found.append(Link(endpoint.title, url, login, endpoint.browser, forward=forward))
    return found


def exposure(settings: Settings) -> list[Check]:
    """doctor's "exposure": MLflow as its Service or Ingress publishes it, the others through port-forwards."""

    def where(link: Link) -> Where:
        if link.forward is None and settings.kube_ingress_host:
            return f"the Ingress for {settings.kube_ingress_host}", True
        if link.forward is None:
            port = settings.ports["MLFLOW_PORT"]
            return f"port {port} of every node (NodePort) or the load balancer", True
        return url_address(link)

    return exposure_checks(links(settings), where)
