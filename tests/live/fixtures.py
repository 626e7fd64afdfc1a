"""Fixtures shared by every suite that talks to the running stack (live, browser).

Each of those suites' conftest imports them; the stack is the one named by `.env`, or by
$TRACKSTACK_ENV_FILE.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from trackstack.engine import Project
from trackstack.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]


def env_file() -> Path:
    return Path(os.environ.get("TRACKSTACK_ENV_FILE", ROOT / ".env"))


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def mark_live(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.live)


@pytest.fixture(scope="session")
def settings() -> Settings:
    # The stack may run with course-demo secrets; validation of everything else still applies.
    return load_settings(env_file(), allow_weak_secrets=True, allow_unpinned=True)


@pytest.fixture(scope="session")
def project(settings: Settings) -> Project:
    return Project(root=ROOT, env_file=env_file(), settings=settings)


@pytest.fixture(scope="session", autouse=True)
def stack_is_up(settings: Settings) -> None:
    """Stop at once with one clear line when nothing of the stack answers."""
    if not any(answers(settings.host, port) for port in settings.published_ports().values()):
        pytest.exit("stack not running: run `invoke up`", returncode=1)
