"""`invoke backup` and `invoke restore` on the deployed stack: one backup, one restore (the k8s suite reuses it)."""

from __future__ import annotations

import json
import os
import re
import uuid
from pathlib import Path

import requests

from tests.swarm.conftest import Deployed, invoke


def round_trip(deployed: Deployed, tmp_path: Path, target: str) -> None:
    """A run and a student's login, backed up; the run deleted and the login removed; both back after a restore."""
    from mlflow.tracking import MlflowClient

    env_file = deployed.project.env_file
    verify: bool | str = deployed.ca or True
    login = f"student-{uuid.uuid4().hex[:6]}"
    added = invoke("user.add", login, env_file=env_file, timeout=300)
    assert added.returncode == 0, added.stderr
    student = (login, added.stdout.split("(shown only now): ", 1)[1].split()[0])
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = deployed.admin
    if deployed.ca:
        os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"] = deployed.ca
    client = MlflowClient(tracking_uri=deployed.url)
    run = client.create_run(client.create_experiment(f"backup-{uuid.uuid4().hex[:8]}"))
    client.log_metric(run.info.run_id, "loss", 0.5)

    written = invoke("backup", "--into", str(tmp_path), env_file=env_file)
    assert written.returncode == 0, written.stdout + written.stderr
    match = re.search(r"backup written to (\S+)", written.stdout)
    assert match, written.stdout
    manifest = json.loads(Path(match[1], "manifest.json").read_text(encoding="utf-8"))
    assert manifest["target"] == target
    assert "auth.dump" in manifest["files"]

    client.delete_run(run.info.run_id)
    assert invoke("user.remove", login, env_file=env_file, timeout=300).returncode == 0
    experiments = f"{deployed.url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(experiments, auth=student, verify=verify, timeout=60).status_code == 401

    refused = invoke("restore", match[1], env_file=env_file)  # no terminal and data in the stack: --yes needed
    assert refused.returncode == 1
    assert "pass --yes" in refused.stderr
    restored = invoke("restore", "--yes", match[1], env_file=env_file)
    assert restored.returncode == 0, restored.stdout + restored.stderr

    assert client.get_run(run.info.run_id).info.lifecycle_stage == "active"
    assert client.get_metric_history(run.info.run_id, "loss")[0].value == 0.5
    assert requests.get(experiments, auth=student, verify=verify, timeout=60).status_code == 200
    assert requests.get(experiments, auth=deployed.admin, verify=verify, timeout=60).status_code == 200


def test_a_backup_restores_a_deleted_run_and_a_removed_login(deployed: Deployed, tmp_path: Path) -> None:
    round_trip(deployed, tmp_path, "swarm")
