"""Nox sessions: `nox -l` lists them. Live sessions talk to the stack that `invoke up` started."""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.error_on_missing_interpreters = True
nox.options.reuse_existing_virtualenvs = True
# uv (a dev dependency) creates and fills a session's virtualenv in seconds where pip takes a
# minute; plain virtualenv + pip when uv is not installed.
nox.options.default_venv_backend = "uv|virtualenv"

PYTHON = "3.11"


@nox.session(python=PYTHON, tags=["ci"])
def lint(session: nox.Session) -> None:
    """Ruff (lint and format), strict mypy (also as on Windows and macOS) and the import contracts."""
    session.install("-e", ".[dev]")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    # Students run the tasks on Windows and macOS too: what only Linux has (fcntl, SIGKILL,
    # os.killpg...) must sit behind a sys.platform check.
    for platform in ("win32", "darwin"):
        session.run("mypy", "--platform", platform)
    # The layers (tasks -> targets -> shared core) and the targets' independence: pyproject.toml.
    session.run("lint-imports")


@nox.session(python=PYTHON, tags=["ci"])
def tests(session: nox.Session) -> None:
    """Fast unit tests: settings, rendering, parsing. No Docker needed."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


# Live suites leave no cache behind and name their slowest steps (CI's time budget is tight).
LIVE_OPTIONS = ("-p", "no:cacheprovider", "--durations=8")


def _live(session: nox.Session, suite: str, *extras: str) -> None:
    """Run one live suite against the stack named by .env (or $TRACKSTACK_ENV_FILE)."""
    session.install("-e", f".[{','.join(('smoke', *extras))}]")
    session.run("pytest", f"tests/{suite}", "-m", "live", *LIVE_OPTIONS, *session.posargs)


@nox.session(python=PYTHON, default=False, tags=["live"])
def smoke(session: nox.Session) -> None:
    """Live smoke tests against the running stack named by .env (start it with `invoke up`)."""
    _live(session, "live")


@nox.session(python=PYTHON, default=False, tags=["live"])
def browser(session: nox.Session) -> None:
    """Headless Chromium clicks through the MLflow, pgAdmin and MinIO UIs of the running stack."""
    _live(session, "browser", "browser")


@nox.session(name="smoke+browser", python=PYTHON, default=False, tags=["ci"])
def smoke_and_browser(session: nox.Session) -> None:
    """smoke and browser in one run (CI): their tests with logins on share one switch of the stack."""
    session.install("-e", ".[smoke,browser]")
    session.run("pytest", "tests/live", "tests/browser", "-m", "live", *LIVE_OPTIONS, *session.posargs)


@nox.session(python=PYTHON, default=False, tags=["ci", "live"])
def lifecycle(session: nox.Session) -> None:
    """Drive `invoke up/down/reset`, upgrade from MLflow 3.8.1, against the live stack: it deletes its data."""
    _live(session, "lifecycle", "models")


@nox.session(python=PYTHON, default=False, tags=["swarm"])
def swarm(session: nox.Session) -> None:
    """`invoke deploy` to the swarm in DOCKER_HOST: replicas, proxy, undeploy and deploy keep the data."""
    session.install("-e", ".[smoke]")
    session.run("pytest", "tests/swarm", "-m", "swarm", *LIVE_OPTIONS, *session.posargs)


@nox.session(python=PYTHON, default=False, tags=["k8s"])
def k8s(session: nox.Session) -> None:
    """`invoke deploy` to the test bed's Kubernetes (tests/k8s/cluster.sh up): dry runs, deploy, data kept, 0 lost."""
    session.install("-e", ".[smoke]")
    session.run("pytest", "tests/k8s", "-m", "k8s", *LIVE_OPTIONS, *session.posargs)


@nox.session(python=PYTHON, default=False, tags=["bench"])
def bench(session: nox.Session) -> None:
    """Benchmark trackstack against the course's stack on the course ports (takes ~20 min; see bench/README.md)."""
    session.install("-e", ".[smoke]")
    session.run("python", "bench/run.py", *session.posargs)
