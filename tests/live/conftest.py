"""Smoke tests: they talk to the running stack over its published ports (fixtures in tests/conftest.py)."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest

from tests.conftest import answers, health_port
from trackstack.settings import Settings

# A smoke test should fail in seconds, not after the MLflow client's minutes of retries.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


@pytest.fixture(scope="session")
def require_service(settings: Settings) -> Callable[[str], None]:
    """Fail a test with the name of the service that does not answer on its port."""

    def check(service: str) -> None:
        port = health_port(settings, service)
        if not answers(settings.host, port):
            pytest.fail(
                f"service {service} is not answering on {settings.host}:{port}: is it stopped? "
                "(`invoke status`, then `invoke up`)",
                pytrace=False,
            )

    return check
