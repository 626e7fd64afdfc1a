"""Plumbing every suite shares: the project root, and the running stack for the live suites.

Tests under tests/live, tests/browser and tests/lifecycle are marked `live`; they talk to the
stack named by `.env` (or $TRACKSTACK_ENV_FILE) and stop at once when nothing of it answers.
Unit tests override `settings` with a valid example (tests/unit/conftest.py).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from trackstack.engine import Project
from trackstack.paths import env_file
from trackstack.services import BY_NAME
from trackstack.settings import Settings
from trackstack.validation import RELAXED, load_settings

ROOT = Path(__file__).resolve().parents[1]
# MLflow 3.10+ servers offer presigned downloads straight from the S3 store, at the address the
# server knows (http://minio:9000), which this machine cannot reach: download through the server.
os.environ.setdefault("MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD", "false")
LIVE_SUITES = ("live", "browser", "lifecycle")


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def health_port(settings: Settings, service: str) -> int:
    """The host port on which `service` shows it is alive (its health endpoint, else its first)."""
    endpoints = BY_NAME[service].endpoints
    endpoint = next((e for e in endpoints if e.health_path), endpoints[0])
    return settings.ports[endpoint.port_key]


def live_project() -> Project:
    """The stack the live suites talk to. It may run with course-demo secrets: the policy checks are relaxed."""
    path = env_file(ROOT)
    return Project(root=ROOT, env_file=path, settings=load_settings(path, RELAXED))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        suite = item.path.relative_to(ROOT / "tests").parts[0]
        if suite in LIVE_SUITES:
            item.add_marker(pytest.mark.live)


@pytest.fixture(scope="session")
def project() -> Project:
    return live_project()


@pytest.fixture(scope="session")
def settings(project: Project) -> Settings:
    return project.settings


@pytest.fixture(scope="session")
def stack_is_up(settings: Settings) -> None:
    """Stop at once with one clear line when nothing of the stack answers."""
    if not any(answers(settings.host, port) for port in settings.published_ports().values()):
        pytest.exit("stack not running: run `invoke up`", returncode=1)


@pytest.fixture(autouse=True)
def _live_stack(request: pytest.FixtureRequest) -> None:
    if request.node.get_closest_marker("live"):
        request.getfixturevalue("stack_is_up")
