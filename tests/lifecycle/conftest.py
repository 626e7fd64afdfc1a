"""Lifecycle tests drive the real `invoke` tasks against the live stack; they change its state."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lifecycle.helpers import Invoke
from trackstack.engine import Project
from trackstack.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        item.add_marker(pytest.mark.live)


@pytest.fixture(scope="session")
def project() -> Project:
    env_file = Path(os.environ.get("TRACKSTACK_ENV_FILE", ROOT / ".env"))
    return Project(ROOT, env_file, load_settings(env_file, allow_weak_secrets=True, allow_unpinned=True))


@pytest.fixture(scope="session")
def invoke(project: Project) -> Invoke:
    """Run `invoke ARGS` in the project folder with no terminal on stdin, as CI and scripts do."""

    def run(*args: str, check: bool = True, env_file: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, INVOKE_TRACKSTACK_ENV_FILE=str(env_file or project.env_file))
        result = subprocess.run(
            [sys.executable, "-m", "invoke", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=900,
        )
        if check and result.returncode != 0:
            pytest.fail(f"invoke {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    return run
