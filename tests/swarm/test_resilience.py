"""Clients keep logging while an MLflow task dies, and while the replicas roll to a new version."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.swarm.conftest import Deployed
from trackstack import swarm, swarmstate

CLIENTS = 4


def node_docker_host(node: str) -> str | None:
    """A node's own engine, when DOCKER_HOST is a socket beside its siblings' (one named per node)."""
    manager = os.environ.get("DOCKER_HOST", "")
    if not manager.startswith("unix://"):
        return None
    sibling = Path(manager.removeprefix("unix://")).with_name(f"{node}.sock")
    return f"unix://{sibling}" if sibling.exists() else None


def log_under(deployed: Deployed, disturb: Callable[[], None], seconds: float = 40) -> tuple[int, list[str], str]:
    """CLIENTS threads log metrics to one run each for `seconds`; `disturb` runs meanwhile.

    Returns how many metrics were logged, the failed calls, and the experiment id.
    """
    from mlflow.tracking import MlflowClient

    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = deployed.admin
    os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"] = deployed.ca
    client = MlflowClient(tracking_uri=deployed.url)
    experiment = client.create_experiment(f"swarm-load-{uuid.uuid4().hex[:8]}")
    runs = [client.create_run(experiment).info.run_id for _ in range(CLIENTS)]
    failures: list[str] = []
    logged = [0] * CLIENTS
    stop = time.monotonic() + seconds

    def work(index: int) -> None:
        step = 0
        while time.monotonic() < stop:
            try:
                client.log_metric(runs[index], "step", float(step), step=step)
            except Exception as error:
                failures.append(f"client {index} step {step}: {type(error).__name__}: {error}"[:300])
            else:
                logged[index] += 1
            step += 1

    threads = [threading.Thread(target=work, args=(index,)) for index in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(5)
    disturb()
    for thread in threads:
        thread.join()
    for index, run in enumerate(runs):
        history = client.get_metric_history(run, "step")
        assert len({metric.step for metric in history}) == logged[index], f"client {index} lost metrics"
    return sum(logged), failures, experiment


def test_a_killed_mlflow_task_loses_no_client_call(deployed: Deployed) -> None:
    name = swarm.service_name(deployed.settings, "mlflow")
    running = [t for t in swarmstate.tasks(name) if t.desired == "running" and t.state == "running"]
    host = node_docker_host(running[0].node)
    if host is None:
        pytest.skip("no socket of the task's own engine beside DOCKER_HOST to kill its container with")

    def kill() -> None:
        label = f"label=com.docker.swarm.service.name={name}"
        ids = subprocess.run(["docker", "-H", host, "ps", "-q", "--filter", label],
                             capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
        subprocess.run(["docker", "-H", host, "kill", ids[0]], capture_output=True, check=True)

    logged, failures, _ = log_under(deployed, kill)
    assert logged > 0
    assert failures == []
    swarmstate.wait_converged(deployed.project.name, (name,), timeout=180)


def test_a_rolling_update_under_load_fails_no_client_call(deployed: Deployed) -> None:
    name = swarm.service_name(deployed.settings, "mlflow")

    def roll() -> None:
        # What a new image or setting does to the replicas: one by one, the new task first.
        subprocess.run(["docker", "service", "update", "--detach", "--force", name], capture_output=True, check=True)

    logged, failures, _ = log_under(deployed, roll, seconds=90)
    assert logged > 0
    assert failures == []
    swarmstate.wait_converged(deployed.project.name, (name,), timeout=180)
