"""`invoke up` is idempotent, `reset` asks and then really empties, `down` keeps the data."""

from __future__ import annotations

import io
import socket
import uuid

import requests

from tests.lifecycle.helpers import SERVICES, Invoke, bucket_objects, containers, experiment_names
from trackstack.engine import Project
from trackstack.seed import minio_client


def _create_experiment(project: Project) -> str:
    name = f"lifecycle-{uuid.uuid4().hex[:10]}"
    response = requests.post(
        f"{project.settings.mlflow_url}/api/2.0/mlflow/experiments/create", json={"name": name}, timeout=10
    )
    response.raise_for_status()
    return name


def test_stack_is_healthy_and_answers_on_every_port(project: Project) -> None:
    state = containers(project)
    assert set(state) == SERVICES
    assert {name: c["health"] for name, c in state.items()} == dict.fromkeys(SERVICES, "healthy")
    for port in project.settings.published_ports().values():
        with socket.create_connection((project.settings.host, port), timeout=5):
            pass  # connected: the port is published and something listens


def test_up_on_a_running_stack_changes_nothing(project: Project, invoke: Invoke) -> None:
    before = containers(project)
    result = invoke("up")
    assert containers(project) == before
    assert f"image {project.settings.mlflow_image} is up to date" in result.stdout
    assert "generated files are up to date" in result.stdout
    assert "already exists" in result.stdout  # the bucket
    assert "already lists the server localhost" in result.stdout


def test_down_then_up_keeps_the_data(project: Project, invoke: Invoke) -> None:
    name = _create_experiment(project)
    invoke("down")
    assert containers(project) == {}
    invoke("up")
    assert name in experiment_names(project)


def test_reset_refuses_without_a_terminal_or_yes(project: Project, invoke: Invoke) -> None:
    name = _create_experiment(project)
    before = containers(project)
    result = invoke("reset", check=False)
    assert result.returncode != 0
    assert "--yes" in result.stderr
    assert "experiments" in result.stdout  # it said what it would have deleted
    assert containers(project) == before
    assert name in experiment_names(project)


def test_reset_yes_leaves_empty_volumes_and_a_healthy_stack(project: Project, invoke: Invoke) -> None:
    name = _create_experiment(project)
    client = minio_client(project.settings)
    client.put_object(project.settings.mlflow_bucket, "lifecycle/marker", io.BytesIO(b"x"), 1)
    result = invoke("reset", "--yes")
    assert "deleted 3 volumes" in result.stdout
    assert name not in experiment_names(project)
    assert experiment_names(project) == {"Default"}
    assert bucket_objects(project) == {}  # the bucket exists again, seeded and empty
    assert {c["health"] for c in containers(project).values()} == {"healthy"}
