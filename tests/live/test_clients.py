"""Students' MLflow clients at their defaults against the Compose stack: log, download, load models.

Each client is `pip install mlflow==VERSION` in a virtualenv of its own (tests/mlflow_clients.py):
the course's 3.8.1, the server's own version, and the newest on PyPI, which a fresh
`pip install mlflow` gives. Nothing of this process's environment reaches them but the URI.
"""

from __future__ import annotations

import os

import pytest

from tests.conftest import Target
from tests.mlflow_clients import (
    COURSE_CLIENT,
    HIDING_VARIABLES,
    PAST_MULTIPART,
    SMALL_SIZES,
    newest_mlflow,
    run_client,
)


@pytest.fixture(scope="module")
def newest() -> str:
    return newest_mlflow()


def test_no_client_setting_hides_how_artifacts_travel() -> None:
    assert [name for name in HIDING_VARIABLES if name in os.environ] == []


@pytest.mark.parametrize("role", ["course", "server's own", "newest"])
def test_a_client_logs_downloads_and_loads_models(target: Target, newest: str, role: str) -> None:
    server = target.settings.mlflow_version
    version = {"course": COURSE_CLIENT, "server's own": server, "newest": newest}[role]
    if role == "newest" and newest == server:
        sizes = [*SMALL_SIZES, PAST_MULTIPART]  # the newest client is the server's: one run, every size
    elif role == "server's own" and newest == server:
        pytest.skip(f"the newest client is the server's own ({server}): tested as 'newest'")
    else:
        sizes = SMALL_SIZES + ([PAST_MULTIPART] if role == "newest" else [])
    done = run_client(version, target.settings.url("MLFLOW_PORT"), sizes, download_limit=300)
    assert done.client == version
    assert len(done.downloads) == len(sizes)
    assert done.model == {"runs": "ok", "models": "ok"}


def test_the_newest_client_downloads_a_small_artifact_within_seconds(target: Target, newest: str) -> None:
    """The regression test of a hang: MLflow 3.17 servers sent 3.18 clients to http://minio:9000."""
    done = run_client(newest, target.settings.url("MLFLOW_PORT"), [256 << 10], model=False, download_limit=5)
    assert done.downloads["blob-262144.bin"] < 5
