"""Students' MLflow clients at their defaults against the Compose stack: log, download, load models.

Each client is `pip install mlflow==VERSION` in a virtualenv of its own (tests/mlflow_clients.py):
the course's 3.8.1, the server's own version, and the newest on PyPI, which a fresh
`pip install mlflow` gives. Nothing of this process's environment reaches them but the URI.

They run at once: loading a model by `runs:/` spends minutes in the client's own retries of a
500 that MLflow's server answers for the run artifact `model`, which MLflow 3 keeps elsewhere
(mlflow/mlflow#22141); the clients mostly wait.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from tests.conftest import Target
from tests.mlflow_clients import (
    COURSE_CLIENT,
    HIDING_VARIABLES,
    PAST_MULTIPART,
    SMALL_SIZES,
    ClientRun,
    newest_mlflow,
    run_client,
)

SMALL_ARTIFACT = 256 << 10  # the size of the report that found the hang


@pytest.fixture(scope="module")
def clients(target: Target) -> dict[str, tuple[str, Future[ClientRun]]]:
    """Every client's version and run, started at once: the course's, the server's own (unless it is the newest),
    the newest with an artifact past the multipart threshold, and the newest downloading a small artifact in 5 s."""
    server, newest = target.settings.mlflow_version, newest_mlflow()
    url = target.settings.url("MLFLOW_PORT")
    runs: dict[str, tuple[str, Callable[[], ClientRun]]] = {
        "course": (COURSE_CLIENT, lambda: run_client(COURSE_CLIENT, url, SMALL_SIZES, download_limit=300)),
        "newest": (newest, lambda: run_client(newest, url, [*SMALL_SIZES, PAST_MULTIPART], download_limit=300)),
        "within seconds": (newest, lambda: run_client(newest, url, [SMALL_ARTIFACT], model=False, download_limit=5)),
    }
    if server != newest:
        runs["server's own"] = (server, lambda: run_client(server, url, SMALL_SIZES, download_limit=300))
    with ThreadPoolExecutor(len(runs)) as pool:
        return {role: (version, pool.submit(run)) for role, (version, run) in runs.items()}


def test_no_client_setting_hides_how_artifacts_travel() -> None:
    assert [name for name in HIDING_VARIABLES if name in os.environ] == []


@pytest.mark.parametrize("role", ["course", "server's own", "newest"])
def test_a_client_logs_downloads_and_loads_models(
    target: Target, clients: dict[str, tuple[str, Future[ClientRun]]], role: str
) -> None:
    if role not in clients:
        pytest.skip(f"the newest client is the server's own ({target.settings.mlflow_version}): tested as 'newest'")
    version, run = clients[role]
    done = run.result()
    assert done.client == version
    assert len(done.downloads) == len(SMALL_SIZES) + (role == "newest")
    assert done.model == {"runs": "ok", "models": "ok"}


def test_the_newest_client_downloads_a_small_artifact_within_seconds(
    clients: dict[str, tuple[str, Future[ClientRun]]],
) -> None:
    """The regression test of a hang: MLflow 3.17 servers sent 3.18 clients to http://minio:9000."""
    assert clients["within seconds"][1].result().downloads[f"blob-{SMALL_ARTIFACT}.bin"] < 5
