"""Plumbing every suite shares: the project root, and the running stack for the live suites.

Tests under tests/live, tests/browser and tests/lifecycle are marked `live`; they talk to the
stack named by `.env` (or $TRACKSTACK_ENV_FILE) and stop at once when nothing of it answers.
The smoke suite reaches its stack through `target`: here the compose stack; the Kubernetes suite
overrides it (and `auth_stack`) with the stack it deployed (tests/k8s/conftest.py).
Unit tests override `settings` with a valid example (tests/unit/conftest.py).
"""

from __future__ import annotations

import fcntl
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Literal, NoReturn

import pytest

from trackstack.paths import ENV_FILE_VARIABLE, env_file
from trackstack.project import Project
from trackstack.settings import Settings
from trackstack.validation import RELAXED, load_settings

ROOT = Path(__file__).resolve().parents[1]


def fresh_secrets() -> dict[str, str]:
    """New random values for every secret of a test bed's own `.env` (a shared server has logins)."""
    return {
        "POSTGRES_PASSWORD": secrets.token_urlsafe(18),
        "PGADMIN_DEFAULT_PASSWORD": secrets.token_urlsafe(18),
        "MINIO_ROOT_PASSWORD": secrets.token_urlsafe(18),
        "MLFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(18),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(24),
        "MLFLOW_DB_PASSWORD": secrets.token_urlsafe(18),
        "MLFLOW_S3_SECRET_KEY": secrets.token_urlsafe(18),
    }


# A test bed may run beside the single-host suites (CI runs them one after the other, people
# need not). The beds read images from the host's
# Docker engine (held shared: tests/k8s/cluster.sh, tests/swarm/testbed.sh, the k8s fixture);
# the test that restarts that engine holds it exclusively, so neither sees it vanish mid-step.
ENGINE_LOCK = Path(os.environ.get("TRACKSTACK_TEST_ENGINE_LOCK", "/run/trackstack-test-engine.lock"))


@contextmanager
def engine_lock(*, exclusive: bool) -> Iterator[None]:
    """Hold the host engine's lock: shared to use the engine, exclusive to restart it."""
    if sys.platform == "win32":  # the test beds run on Linux hosts
        raise RuntimeError("the test beds' engine lock needs fcntl (Linux)")
    with ENGINE_LOCK.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def bed_unavailable(variable: str, reason: str) -> NoReturn:
    """A test bed's suite without its bed skips, unless `variable`=required (CI): then it fails."""
    if os.environ.get(variable) == "required":
        pytest.fail(f"{variable}=required, but {reason}", pytrace=False)
    pytest.skip(reason)


LIVE_SUITES = ("live", "browser", "lifecycle")


def answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def health_port(settings: Settings, service: str) -> int:
    """The host port on which `service` shows it is alive (its health endpoint, else its first)."""
    endpoints = settings.service(service).endpoints
    endpoint = next((e for e in endpoints if e.health_path), endpoints[0])
    return settings.ports[endpoint.port_key]


def live_project() -> Project:
    """The stack the live suites talk to. It may run with course-demo secrets: the policy checks are relaxed."""
    path = env_file(ROOT)
    return Project(root=ROOT, env_file=path, settings=load_settings(path, RELAXED))


_session: list[pytest.Config] = []


def pytest_configure(config: pytest.Config) -> None:
    _session[:] = [config]


def progress(line: str) -> None:
    """A line in pytest's own output at once, past its capture: where a long live test spends its
    time (a deploy, a roll, reading back) reaches CI's log even when the test passes."""
    config = _session[0] if _session else None
    reporter = config.pluginmanager.get_plugin("terminalreporter") if config else None
    capture = config.pluginmanager.get_plugin("capturemanager") if config else None
    if reporter is None or capture is None:
        print(line, file=sys.stderr)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        suite = item.path.relative_to(ROOT / "tests").parts[0]
        if suite in LIVE_SUITES:
            item.add_marker(pytest.mark.live)
        elif suite == "swarm":  # its own deployment on a swarm, not the stack of .env
            item.add_marker(pytest.mark.swarm)
        elif suite == "k8s":  # its own deployment on a Kubernetes cluster
            item.add_marker(pytest.mark.k8s)
    # The tests that need MLflow's logins share one switch of the live stack (`auth_stack`, per
    # session): they run last, so that the others see the stack as `.env` describes it.
    items.sort(key=lambda item: "auth_stack" in getattr(item, "fixturenames", ()))


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


# `mlflow gc` of an experiment's deleted runs (their ids), run inside the stack (tests/live/cleanup.py).
Collect = Callable[[str, list[str]], None]


@dataclass(frozen=True)
class Target:
    """The stack the smoke suite talks to, as this machine reaches it.

    `settings` carries its credentials and, in `ports`, where each endpoint answers on 127.0.0.1:
    the published ports on Compose; on Kubernetes MLflow's NodePort and `kubectl port-forward`s of
    the other Services. `admin` is MLflow's login where it asks for one.
    """

    kind: Literal["compose", "kubernetes"]
    settings: Settings
    collect: Collect
    admin: tuple[str, str] | None = field(default=None, repr=False)


@pytest.fixture(scope="session")
def target(project: Project) -> Target:
    """The compose stack of `.env` on its published ports (logins: `auth_stack` switches them on)."""
    from tests.live.cleanup import compose_gc

    return Target("compose", project.settings, partial(compose_gc, project))


@pytest.fixture(scope="session")
def require_service(target: Target) -> Callable[[str], None]:
    """Fail a test with the name of the service that does not answer on its port."""

    def check(service: str) -> None:
        settings = target.settings
        port = health_port(settings, service)
        if not answers(settings.host, port):
            pytest.fail(f"service {service} of the {target.kind} stack is not answering on {settings.host}:{port}: "
                        "is it stopped? (`invoke status`)", pytrace=False)  # fmt: skip

    return check


# The Host header a class would send in LAN mode; requests only ever go to 127.0.0.1.
PUBLIC_HOST = "mlflow.class.test"


@dataclass
class AuthStack:
    """The live stack while it runs with logins, and the experiments to purge once they are off again."""

    project: Project
    admin: tuple[str, str]
    experiments: list[str] = field(default_factory=list)

    @property
    def verify(self) -> str | bool:
        """What a client verifies the server with: trackstack's CA file (LAN mode, HTTPS), else the default."""
        from trackstack import tls

        settings = self.project.settings
        return str(ROOT / tls.ca_file(settings)) if settings.mlflow_url.startswith("https:") else True


def _invoke_up(env_file: Path) -> None:
    env = dict(os.environ) | {ENV_FILE_VARIABLE: str(env_file)}
    result = subprocess.run([sys.executable, "-m", "invoke", "up"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            capture_output=True, text=True, timeout=900, check=False)  # fmt: skip
    if result.returncode != 0:
        pytest.fail(f"invoke up ({env_file.name}) failed:\n{result.stdout}\n{result.stderr}", pytrace=False)


@pytest.fixture(scope="session")
def auth_stack(project: Project) -> Iterator[AuthStack]:
    """The live stack with LAN-mode settings and MLflow logins for the tests that ask (run last), then as before.

    Writes a private copy of the stack's `.env` with MLFLOW_AUTH=true, new admin secrets,
    MLFLOW_PUBLIC_HOSTS, default permission READ and BIND_ADDRESS=0.0.0.0 (LAN mode: MLflow only
    through the TLS proxy, HTTPS with trackstack's CA, whose certificate covers 127.0.0.1 too),
    runs `invoke up` on it, and `invoke up` on the original `.env` at the end. MLflow and the
    proxy are recreated each way.
    """
    overrides = {
        "BIND_ADDRESS": "0.0.0.0",
        "MLFLOW_AUTH": "true",
        "MLFLOW_ADMIN_USER": "admin",
        "MLFLOW_ADMIN_PASSWORD": secrets.token_urlsafe(18),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_urlsafe(24),
        "MLFLOW_PUBLIC_HOSTS": PUBLIC_HOST,
        "MLFLOW_DEFAULT_PERMISSION": "READ",
    }
    kept = [
        line
        for line in project.env_file.read_text(encoding="utf-8").splitlines()
        if line.partition("=")[0].strip() not in overrides
    ]
    path = project.env_file.with_name(f"{project.env_file.name}.auth-test")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        stream.write("\n".join([*kept, *(f"{key}={value}" for key, value in overrides.items())]) + "\n")
    started = time.monotonic()
    stack = AuthStack(
        Project(root=ROOT, env_file=path, settings=load_settings(path, RELAXED)),
        ("admin", overrides["MLFLOW_ADMIN_PASSWORD"]),
    )
    try:
        _invoke_up(path)
        progress(f"[auth_stack] logins on after {time.monotonic() - started:.0f}s")
        yield stack
    finally:
        started = time.monotonic()
        _invoke_up(project.env_file)
        path.unlink(missing_ok=True)
        progress(f"[auth_stack] logins off again after {time.monotonic() - started:.0f}s")
        _purge(project, stack.experiments)


def _purge(project: Project, experiment_ids: list[str]) -> None:
    from mlflow.tracking import MlflowClient

    from tests.live.cleanup import compose_gc, purge_experiment

    client = MlflowClient(tracking_uri=project.settings.mlflow_url)
    for experiment_id in experiment_ids:
        purge_experiment(client, experiment_id, partial(compose_gc, project))
