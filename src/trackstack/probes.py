"""Is a service ready? Asked from this machine, over the ports users reach it on.

`invoke up` and the benchmark count a service as ready when its health endpoint answers
here, not when Docker's healthcheck next runs: on engines without `start_interval` that
can be a whole probe interval later. Docker's health status still drives restarts and
`docker compose up` ordering, and `invoke status` shows it.
"""

from __future__ import annotations

import enum
import http.client
import ssl
from typing import Any

from trackstack.services import Service
from trackstack.settings import Settings


class Readiness(enum.Enum):
    READY = "ready"
    DOWN = "not answering"
    WRONG_PASSWORD = "refuses the password in .env"  # noqa: S105 - a state, not a password


def http_ok(host: str, port: int, path: str, timeout: float = 2.0, *, tls: bool = False) -> bool:
    """GET `path` answers 200; with `tls` over HTTPS, whichever certificate the server shows: a health
    path carries no login, and this asks only whether the service is up (clients verify: auth.py)."""
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=timeout,
                                                                             context=context)  # fmt: skip
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def connect_postgres(settings: Settings, timeout: float = 5.0) -> Any:
    """A psycopg connection to MLflow's database over the published port, with the `.env` login."""
    import psycopg  # imported here: `invoke --list` stays quick

    return psycopg.connect(
        host=settings.host,
        port=settings.ports["POSTGRES_PORT"],
        user=settings.postgres_user,
        password=settings.postgres_password.get_secret_value(),
        dbname=settings.postgres_db,
        connect_timeout=max(1, round(timeout)),
    )


def postgres_readiness(settings: Settings, timeout: float = 2.0) -> Readiness:
    """Log in over TCP with the `.env` credentials and run SELECT 1.

    During its first-run init the server listens on its socket only, so a TCP login means
    the real server is up.
    """
    import psycopg

    try:
        with connect_postgres(settings, timeout) as connection:
            connection.execute("SELECT 1")
    except psycopg.OperationalError as error:
        return Readiness.WRONG_PASSWORD if "password authentication failed" in str(error) else Readiness.DOWN
    return Readiness.READY


def readiness(settings: Settings, service: Service | str) -> Readiness:
    """Whether `service` answers on its health endpoint (Postgres: a real login)."""
    service = settings.service(service) if isinstance(service, str) else service
    if service.probe.tool == "pg_isready":
        return postgres_readiness(settings)
    endpoint = next(e for e in service.endpoints if e.health_path)
    # In LAN mode MLflow's port is the TLS proxy's (Settings.url says https).
    tls = settings.url(endpoint.port_key).startswith("https:")
    ok = http_ok(settings.host, settings.ports[endpoint.port_key], endpoint.health_path, tls=tls)
    return Readiness.READY if ok else Readiness.DOWN
