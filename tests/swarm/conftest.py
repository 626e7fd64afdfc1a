"""The shared server on a live swarm: `invoke deploy` against the engine named by DOCKER_HOST.

Needs a swarm manager in DOCKER_HOST (or the current Docker context) with one node labelled
trackstack.data=true, and a registry every node pulls from in TRACKSTACK_TEST_REGISTRY
(host:port). The suite writes its own `.env` (strong random secrets, logins on, the data node's
address as the public name) and deploys the project TRACKSTACK_TEST_SWARM_PROJECT (default
tsswarm); it removes the stack at the end and keeps its volumes, as `invoke undeploy` does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest
from dotenv import dotenv_values

from tests.conftest import ROOT, bed_unavailable, fresh_secrets, progress
from trackstack.engine import DockerError
from trackstack.paths import ENV_FILE_VARIABLE
from trackstack.project import Project
from trackstack.settings import Settings
from trackstack.targets.swarm import render as swarm
from trackstack.targets.swarm import state as swarmstate
from trackstack.validation import RELAXED, load_settings

PROJECT = os.environ.get("TRACKSTACK_TEST_SWARM_PROJECT", "tsswarm")
# The suite's `.env` lives with the volumes it describes: CI keeps it in the test bed's cache.
ENV_FILE = Path(os.environ.get("TRACKSTACK_TEST_SWARM_ENV_FILE", "") or ROOT / f".env.{PROJECT}")


def _unavailable(reason: str) -> NoReturn:
    bed_unavailable("TRACKSTACK_TEST_SWARM", reason)


@dataclass
class Deployed:
    project: Project
    url: str  # MLflow through the proxy
    admin: tuple[str, str] = field(repr=False)  # a failing test prints the fixture: not the password
    ca: str  # the proxy's CA certificate that `invoke deploy` copied

    @property
    def settings(self) -> Settings:
        return self.project.settings


def invoke(*args: str, env_file: Path, timeout: float = 1500) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ) | {ENV_FILE_VARIABLE: str(env_file)}
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip


def write_env(path: Path, overrides: dict[str, str]) -> None:
    values = {key: value or "" for key, value in dotenv_values(ROOT / ".env.example", interpolate=False).items()}
    values |= overrides
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        stream.write("".join(f"{key}={value}\n" for key, value in values.items()))


@pytest.fixture(scope="session")
def swarm_env() -> dict[str, str]:
    """The test `.env` values; skips the suite when no swarm manager or registry is named."""
    registry = os.environ.get("TRACKSTACK_TEST_REGISTRY", "")
    if not registry:
        _unavailable("set TRACKSTACK_TEST_REGISTRY (host:port) and DOCKER_HOST (a swarm manager)")
    try:
        swarmstate.require_manager()
        node = swarmstate.data_node()
    except (DockerError, swarmstate.DeployError) as error:
        _unavailable(f"no usable swarm: {error}")
    return fresh_secrets() | {
        "COMPOSE_PROJECT_NAME": PROJECT,
        "MLFLOW_AUTH": "true",
        "MLFLOW_PUBLIC_HOSTS": node.address,
        "MLFLOW_IMAGE_REPOSITORY": f"{registry}/{PROJECT}-mlflow",
        "MLFLOW_REPLICAS": "2",
        "MLFLOW_WORKERS": "1",  # a small machine runs three engines
        # The bed's kernel has no ESP (no IPsec): an encrypted overlay drops all traffic between its nodes.
        "SWARM_OVERLAY_ENCRYPTED": "false",
        "MLFLOW_PORT": os.environ.get("TRACKSTACK_TEST_SWARM_PORT", "8443"),
    }


@pytest.fixture(scope="session")
def env_file(swarm_env: dict[str, str]) -> Path:
    """The suite's `.env`, kept between runs (git-ignored, mode 600): the volumes it leaves hold
    data of these passwords (Postgres reads its password only when it creates the database)."""
    path = ENV_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    kept = {key: value or "" for key, value in dotenv_values(path).items()} if path.exists() else {}
    write_env(path, swarm_env | {key: value for key, value in kept.items() if key.endswith(("PASSWORD", "KEY"))})
    return path


@pytest.fixture(scope="session")
def deployed(env_file: Path) -> Iterator[Deployed]:
    """`invoke deploy` once for the session; `invoke undeploy` at its end (volumes stay)."""
    started = time.monotonic()
    result = invoke("deploy", env_file=env_file)
    if result.returncode != 0:
        pytest.fail(f"invoke deploy failed:\n{result.stdout}\n{result.stderr}", pytrace=False)
    progress(f"[swarm] deployed in {time.monotonic() - started:.0f}s")
    project = Project(root=ROOT, env_file=env_file, settings=load_settings(env_file, RELAXED))
    admin = (project.settings.mlflow_admin_user, project.settings.mlflow_admin_password.get_secret_value())
    ca = str(ROOT / swarm.ca_file(project.settings))
    yield Deployed(project, swarm.mlflow_url(project.settings), admin, ca)
    invoke("undeploy", env_file=env_file)
