"""What lifecycle tests share: the engine's view of the containers, and MLflow data to compare."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from trackstack.engine import compose_args
from trackstack.project import Project
from trackstack.services import SERVICE_NAMES
from trackstack.storage import minio_client

Invoke = Callable[..., subprocess.CompletedProcess[str]]
SERVICES = set(SERVICE_NAMES)


def containers(project: Project) -> dict[str, dict[str, str]]:
    """Service name -> container id, start time and health, straight from the engine."""
    ids = subprocess.run(
        compose_args(project, "ps", "--all", "--quiet"), capture_output=True, text=True, check=True
    ).stdout.split()
    if not ids:
        return {}
    inspected = json.loads(
        subprocess.run(["docker", "inspect", *ids], capture_output=True, text=True, check=True).stdout
    )
    return {
        c["Config"]["Labels"]["com.docker.compose.service"]: {
            "id": c["Id"],
            "started": c["State"]["StartedAt"],
            "health": c["State"].get("Health", {}).get("Status", ""),
        }
        for c in inspected
    }


def started(project: Project) -> dict[str, tuple[str, str]]:
    """Each service's container and when it started: what "nothing changed" means.

    (Not the health: the engine's verdict on a just-started service trails `invoke up`'s by up
    to a probe interval.)
    """
    return {name: (c["id"], c["started"]) for name, c in containers(project).items()}


def wait_all_healthy(project: Project, timeout: float = 240) -> None:
    """Wait for the restart policy and healthchecks to bring every service back."""
    deadline = time.monotonic() + timeout
    state: dict[str, dict[str, str]] = {}
    while time.monotonic() < deadline:
        try:
            state = containers(project)
        except subprocess.CalledProcessError:
            state = {}  # the daemon may still be starting
        if set(state) == SERVICES and all(c["health"] == "healthy" for c in state.values()):
            return
        time.sleep(1)
    raise AssertionError(f"not all healthy after {timeout}s: {state}")


def experiment_names(project: Project) -> set[str]:
    response = requests.post(
        f"{project.settings.mlflow_url}/api/2.0/mlflow/experiments/search", json={"max_results": 1000}, timeout=10
    )
    response.raise_for_status()
    return {e["name"] for e in response.json().get("experiments", [])}


def bucket_objects(project: Project) -> dict[str, bytes]:
    client = minio_client(project.settings)
    found = {}
    for obj in client.list_objects(project.settings.mlflow_bucket, recursive=True):
        response = client.get_object(project.settings.mlflow_bucket, obj.object_name)
        try:
            found[obj.object_name] = response.read()
        finally:
            response.close()
            response.release_conn()
    return found


@dataclass(frozen=True)
class Logged:
    """Runs logged through the tracking server, to be compared after a fault."""

    experiment_id: str
    runs: dict[str, dict[str, Any]]  # run id -> params, metric history, artifact bytes


def log_runs(project: Project, tmp: Path, count: int = 2) -> Logged:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=project.settings.mlflow_url)
    experiment_id = client.create_experiment(f"persist-{uuid.uuid4().hex[:10]}")
    runs: dict[str, dict[str, Any]] = {}
    for index in range(count):
        run_id = client.create_run(experiment_id).info.run_id
        now = int(time.time() * 1000)
        metrics = [Metric("loss", round(1.0 / (step + 1 + index), 6), now, step) for step in range(20)]
        client.log_batch(run_id, metrics=metrics, params=[Param("run", str(index))])
        artifact = tmp / f"weights-{index}.bin"
        artifact.write_bytes(uuid.uuid4().bytes * 256)
        client.log_artifact(run_id, str(artifact))
        client.set_terminated(run_id)
        runs[run_id] = {
            "params": {"run": str(index)},
            "loss": [(m.step, m.value) for m in metrics],
            "artifact": (artifact.name, artifact.read_bytes()),
        }
    return Logged(experiment_id, runs)


def assert_intact(project: Project, logged: Logged, tmp: Path) -> None:
    """Every run, metric and artifact byte is still there, read back through the tracking server."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=project.settings.mlflow_url)
    for run_id, expected in logged.runs.items():
        run = client.get_run(run_id)
        assert run.info.experiment_id == logged.experiment_id
        assert run.data.params == expected["params"]
        history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "loss"))
        assert history == expected["loss"]
        name, data = expected["artifact"]
        target = tmp / f"download-{run_id}"
        target.mkdir(exist_ok=True)
        path = client.download_artifacts(run_id, name, str(target))
        assert Path(path).read_bytes() == data
