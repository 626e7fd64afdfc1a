"""A student's fresh `pip install mlflow` against the shared server, through the TLS proxy, at its defaults."""

from __future__ import annotations

import os

from tests.mlflow_clients import HIDING_VARIABLES, SMALL_SIZES, newest_mlflow, run_client
from tests.swarm.conftest import Deployed


def test_the_newest_client_logs_downloads_and_loads_models_through_the_proxy(deployed: Deployed) -> None:
    assert [name for name in HIDING_VARIABLES if name in os.environ] == []
    newest = newest_mlflow()
    # The student is given the server's CA (MLFLOW_TRACKING_SERVER_CERT_PATH) and a login.
    done = run_client(newest, deployed.url, SMALL_SIZES, login=deployed.admin, ca=deployed.ca, download_limit=60)
    assert (done.client, len(done.downloads), done.model) == (newest, len(SMALL_SIZES), {"runs": "ok", "models": "ok"})
