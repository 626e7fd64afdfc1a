"""Are the host ports free? Checked before anything starts, naming who holds a port."""

from __future__ import annotations

import socket
from collections.abc import Collection

from trackstack.problems import Problem
from trackstack.services import SERVICE_OF_PORT
from trackstack.settings import Settings


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def port_owner(port: int) -> str | None:
    """The program listening on `port`, when the OS lets us see it."""
    import psutil

    try:
        listeners = [
            c for c in psutil.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN and c.laddr.port == port
        ]
    except (psutil.AccessDenied, OSError):
        return None
    for connection in listeners:
        if connection.pid:
            try:
                name = psutil.Process(connection.pid).name()
            except psutil.Error:
                continue
            if name == "docker-proxy":
                return f"docker-proxy (pid {connection.pid}: another container publishes it; see `docker ps`)"
            return f"{name} (pid {connection.pid})"
    return None


def busy_ports(settings: Settings, running_services: Collection[str]) -> list[Problem]:
    """Problems for ports that another program holds; ports our own running services hold are fine."""
    problems = []
    for key, port in settings.published_ports().items():
        if SERVICE_OF_PORT[key] in running_services:
            continue
        if not port_is_free(settings.bind_address, port):
            owner = port_owner(port)
            holder = f"in use by {owner}" if owner else "already in use by another program"
            problems.append(
                Problem(
                    key, repr(str(port)), f"port {port} is {holder}", f"stop that program, or set {key} to a free port"
                )
            )
    return problems
