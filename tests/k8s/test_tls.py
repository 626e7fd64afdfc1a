"""MLflow serving TLS itself on its NodePort, live, with the clients a student has: the bed's suite
deploys with TLS_TERMINATED_IN_FRONT=true (its smoke suite speaks plain HTTP); this module deploys the
same stack once without it, checks what a student's clients see, and deploys it back."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT
from tests.k8s.conftest import NODE_PORT, dotenv
from tests.swarm.conftest import Deployed, invoke, write_env
from trackstack import tls


@pytest.fixture(scope="module")
def tls_url(deployed: Deployed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The shared deployment with MLflow serving TLS on its NodePort (only MLflow rolls), then as it was."""
    env_file = tmp_path_factory.mktemp("k8s-tls") / ".env"
    # The suite's `.env` and secrets, the same project and namespace; MLflow terminates TLS itself.
    write_env(env_file, dotenv(deployed.project.env_file) | {"TLS_TERMINATED_IN_FRONT": "false"})
    result = invoke("deploy", env_file=env_file)
    try:
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
        yield f"https://127.0.0.1:{NODE_PORT}"
    finally:
        back = invoke("deploy", env_file=deployed.project.env_file)
        assert back.returncode == 0, f"{back.stdout}\n{back.stderr}"


def test_mlflow_serves_tls_that_verifies_against_the_ca_students_get_only(
    deployed: Deployed, tls_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    ca = str(ROOT / tls.ca_file(deployed.settings))
    assert Path(ca).is_file()
    experiments = f"{tls_url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(experiments, auth=deployed.admin, verify=ca, timeout=30).status_code == 200
    with pytest.raises(requests.exceptions.SSLError):  # not a certificate the system's trust store knows
        requests.get(f"{tls_url}/health", timeout=30)
    with pytest.raises(requests.exceptions.ConnectionError):  # and no plain HTTP on the same port
        requests.get(f"http://127.0.0.1:{NODE_PORT}/health", timeout=30)

    # What a student sets: the tracking URI, the login, and the CA file trackstack printed.
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", deployed.admin[0])
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", deployed.admin[1])
    monkeypatch.setenv("MLFLOW_TRACKING_SERVER_CERT_PATH", ca)
    client = MlflowClient(tracking_uri=tls_url)
    run = client.create_run(client.create_experiment(f"k8s-tls-{uuid.uuid4().hex[:8]}"))
    client.log_metric(run.info.run_id, "loss", 0.5)
    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "note.txt").write_text("over tls", encoding="utf-8")
        client.log_artifact(run.info.run_id, str(Path(folder, "note.txt")))
    with tempfile.TemporaryDirectory() as folder:
        path = client.download_artifacts(run.info.run_id, "note.txt", folder)
        assert Path(path).read_text(encoding="utf-8") == "over tls"
    assert client.get_run(run.info.run_id).data.metrics == {"loss": 0.5}
