"""Live tests: they talk to the stack named by `.env` (or $TRACKSTACK_ENV_FILE) over its published ports."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.live.fixtures import answers, mark_live, project, settings, stack_is_up
from trackstack.settings import Settings

__all__ = ["project", "settings", "stack_is_up"]  # fixtures, shared with the browser suite

ROOT = Path(__file__).resolve().parents[2]

# A smoke test should fail in seconds, not after the MLflow client's minutes of retries.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    mark_live(items)


@pytest.fixture(scope="session")
def require_service(settings: Settings) -> Callable[[str], None]:
    """Fail a test with the name of the service that does not answer on its port."""
    ports = {
        "postgres": settings.postgres_port,
        "minio": settings.minio_api_port,
        "mlflow": settings.mlflow_port,
        "pgadmin": settings.pgadmin_port,
    }

    def check(service: str) -> None:
        port = ports[service]
        if not answers(settings.host, port):
            pytest.fail(
                f"service {service} is not answering on {settings.host}:{port}: is it stopped? "
                "(`invoke status`, then `invoke up`)",
                pytrace=False,
            )

    return check
