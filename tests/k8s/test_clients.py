"""A student's fresh `pip install mlflow` against the stack deployed to Kubernetes, at its defaults."""

from __future__ import annotations

import os

from tests.mlflow_clients import HIDING_VARIABLES, SMALL_SIZES, newest_mlflow, run_client
from tests.swarm.conftest import Deployed


def test_the_newest_client_logs_downloads_and_loads_models_through_the_node_port(deployed: Deployed) -> None:
    assert [name for name in HIDING_VARIABLES if name in os.environ] == []
    newest = newest_mlflow()
    done = run_client(newest, deployed.url, SMALL_SIZES, login=deployed.admin, download_limit=60)
    assert (done.client, len(done.downloads), done.model) == (newest, len(SMALL_SIZES), {"runs": "ok", "models": "ok"})
