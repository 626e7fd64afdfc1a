"""Live tests: they talk to the stack named by `.env` (or $TRACKSTACK_ENV_FILE) over its published ports."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from trackstack.engine import Project
from trackstack.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]

# A smoke test should fail in seconds, not after the MLflow client's minutes of retries.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")


def _env_file() -> Path:
    return Path(os.environ.get("TRACKSTACK_ENV_FILE", ROOT / ".env"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.live)


@pytest.fixture(scope="session")
def settings() -> Settings:
    # The stack may run with course-demo secrets; validation of everything else still applies.
    return load_settings(_env_file(), allow_weak_secrets=True, allow_unpinned=True)


@pytest.fixture(scope="session")
def project(settings: Settings) -> Project:
    return Project(root=ROOT, env_file=_env_file(), settings=settings)


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session", autouse=True)
def stack_is_up(settings: Settings) -> None:
    """Stop at once with one clear line when nothing of the stack answers."""
    if not any(_answers(settings.host, port) for port in settings.published_ports().values()):
        pytest.exit("stack not running: run `invoke up`", returncode=1)


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
        if not _answers(settings.host, port):
            pytest.fail(
                f"service {service} is not answering on {settings.host}:{port}: is it stopped? "
                "(`invoke status`, then `invoke up`)",
                pytrace=False,
            )

    return check
