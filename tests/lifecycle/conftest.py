"""Lifecycle tests drive the real `invoke` tasks against the live stack; they change its state."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from trackstack.engine import Project, compose_args
from trackstack.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
Invoke = Callable[..., subprocess.CompletedProcess[str]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.live)


@pytest.fixture(scope="session")
def project() -> Project:
    env_file = Path(os.environ.get("TRACKSTACK_ENV_FILE", ROOT / ".env"))
    return Project(ROOT, env_file, load_settings(env_file, allow_weak_secrets=True, allow_unpinned=True))


@pytest.fixture(scope="session")
def invoke() -> Invoke:
    """Run `invoke ARGS` in the project folder with no terminal on stdin, as CI and scripts do."""

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "invoke", *args],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if check and result.returncode != 0:
            pytest.fail(f"invoke {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    return run


def containers(project: Project) -> dict[str, dict[str, str]]:
    """Service name -> container id, start time and health, straight from the engine."""
    ids = subprocess.run(
        compose_args(project, "ps", "--all", "--quiet"), capture_output=True, text=True, check=True
    ).stdout.split()
    if not ids:
        return {}
    inspected = json.loads(
        subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, check=True).stdout
    )
    return {
        c["Config"]["Labels"]["com.docker.compose.service"]: {
            "id": c["Id"],
            "started": c["State"]["StartedAt"],
            "health": c["State"].get("Health", {}).get("Status", ""),
        }
        for c in inspected
    }
