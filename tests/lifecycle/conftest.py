"""Lifecycle tests drive the real `invoke` tasks against the live stack; they change its state."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.lifecycle.helpers import Invoke
from trackstack.paths import ENV_FILE_VARIABLE
from trackstack.project import Project


@pytest.fixture(scope="session")
def invoke(project: Project) -> Invoke:
    """Run `invoke ARGS` in the project folder with no terminal on stdin, as CI and scripts do."""

    def run(*args: str, check: bool = True, env_file: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ) | {ENV_FILE_VARIABLE: str(env_file or project.env_file)}
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
