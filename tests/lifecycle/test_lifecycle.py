"""`invoke up` is idempotent, `reset` asks and then really empties, `down` keeps the data."""

from __future__ import annotations

import io
import socket
import uuid

import requests

from tests.lifecycle.conftest import Invoke, containers
from trackstack.engine import Project
from trackstack.seed import minio_client

SERVICES = {"postgres", "minio", "mlflow", "pgadmin"}


def _experiment_names(project: Project) -> set[str]:
    response = requests.post(
        f"{project.settings.mlflow_url}/api/2.0/mlflow/experiments/search",
        json={"max_results": 1000},
        timeout=10,
    )
    response.raise_for_status()
    return {e["name"] for e in response.json().get("experiments", [])}


def _create_experiment(project: Project) -> str:
    name = f"lifecycle-{uuid.uuid4().hex[:10]}"
    response = requests.post(
        f"{project.settings.mlflow_url}/api/2.0/mlflow/experiments/create", json={"name": name}, timeout=10
    )
    response.raise_for_status()
    return name


def _objects(project: Project) -> list[str]:
    client = minio_client(project.settings)
    return [o.object_name for o in client.list_objects(project.settings.mlflow_bucket, recursive=True)]


def test_stack_is_healthy_and_answers_on_every_port(project: Project) -> None:
    state = containers(project)
    assert set(state) == SERVICES
    assert {name: c["health"] for name, c in state.items()} == dict.fromkeys(SERVICES, "healthy")
    for key, port in project.settings.published_ports().items():
        with socket.create_connection((project.settings.host, port), timeout=5):
            pass  # connected: the port is published and something listens
        assert key


def test_up_on_a_running_stack_changes_nothing(project: Project, invoke: Invoke) -> None:
    before = containers(project)
    result = invoke("up")
    assert containers(project) == before
    assert "image trackstack-mlflow" in result.stdout
    assert "up to date" in result.stdout
    assert "already exists" in result.stdout  # the bucket
    assert "already lists the server localhost" in result.stdout


def test_down_then_up_keeps_the_data(project: Project, invoke: Invoke) -> None:
    name = _create_experiment(project)
    invoke("down")
    assert containers(project) == {}
    invoke("up")
    assert name in _experiment_names(project)


def test_reset_refuses_without_a_terminal_or_yes(project: Project, invoke: Invoke) -> None:
    name = _create_experiment(project)
    before = containers(project)
    result = invoke("reset", check=False)
    assert result.returncode != 0
    assert "--yes" in result.stderr
    assert containers(project) == before
    assert name in _experiment_names(project)


def test_reset_yes_leaves_empty_volumes_and_a_healthy_stack(project: Project, invoke: Invoke) -> None:
    name = _create_experiment(project)
    client = minio_client(project.settings)
    client.put_object(project.settings.mlflow_bucket, "lifecycle/marker", io.BytesIO(b"x"), 1)
    result = invoke("reset", "--yes")
    assert "deleted 3 volumes" in result.stdout
    assert name not in _experiment_names(project)
    assert _experiment_names(project) == {"Default"}
    assert _objects(project) == []  # the bucket exists again, seeded and empty
    assert {c["health"] for c in containers(project).values()} == {"healthy"}
