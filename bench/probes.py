"""Is a stack ready? The same client-side probes for both stacks, derived from the service table.

"Ready" means every service answers from the host (its health path, or `SELECT 1` for
Postgres: trackstack's own `probes.readiness`) and the artifact bucket exists.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable

from bench import BenchError
from trackstack.probes import Readiness, readiness
from trackstack.services import SERVICES, Service
from trackstack.settings import Settings
from trackstack.storage import minio_client

POLL = 0.2  # seconds between two rounds of probes
READY_TIMEOUT = 300.0


def _answers(settings: Settings, service: Service) -> bool:
    return readiness(settings, service) is Readiness.READY


def _bucket_ok(settings: Settings) -> bool:
    return bool(minio_client(settings).bucket_exists(settings.mlflow_bucket))


def probes(settings: Settings) -> dict[str, Callable[[], bool]]:
    """One probe per service of the table, and one for the bucket."""
    checks: dict[str, Callable[[], bool]] = {}
    for service in SERVICES:
        if service.probe.tool != "pg_isready" and not any(e.health_path for e in service.endpoints):
            raise BenchError(f"service {service.name} has no health path: add one to its Endpoint in services.py")
        checks[service.name] = functools.partial(_answers, settings, service)
    checks["bucket"] = functools.partial(_bucket_ok, settings)
    return checks


def wait_ready(settings: Settings, started: float, timeout: float = READY_TIMEOUT) -> dict[str, float]:
    """Poll until every probe has answered; seconds since `started` for each probe and for "all"."""
    pending = probes(settings)
    first: dict[str, float] = {}
    while pending:
        for name, probe in list(pending.items()):
            try:
                ok = probe()
            except Exception:  # anything short of an answer means "not yet"
                ok = False
            if ok:
                first[name] = time.monotonic() - started
                del pending[name]
        if pending:
            if time.monotonic() - started > timeout:
                raise BenchError(f"not ready after {timeout:.0f}s: {', '.join(pending)} did not answer")
            time.sleep(POLL)
    first["all"] = time.monotonic() - started
    return first
