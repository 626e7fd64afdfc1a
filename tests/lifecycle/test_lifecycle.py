"""`invoke up` is idempotent, `reset` asks and then really empties, `down` keeps the data."""

from __future__ import annotations

import socket
import uuid

import requests

from tests.lifecycle.helpers import (
    SERVICES,
    Invoke,
    containers,
    experiment_names,
    started,
    wait_all_healthy,
)
from tests.live.pgadmin_api import PgAdmin
from trackstack import engine
from trackstack.project import Project


def _create_experiment(project: Project) -> str:
    name = f"lifecycle-{uuid.uuid4().hex[:10]}"
    response = requests.post(
        f"{project.settings.mlflow_url}/api/2.0/mlflow/experiments/create", json={"name": name}, timeout=10
    )
    response.raise_for_status()
    return name


def test_stack_is_healthy_and_answers_on_every_port(project: Project) -> None:
    wait_all_healthy(project, timeout=60)  # the engine's verdict may trail `invoke up` by a probe interval
    state = containers(project)
    assert set(state) == SERVICES
    assert {name: c["health"] for name, c in state.items()} == dict.fromkeys(SERVICES, "healthy")
    for port in project.settings.published_ports().values():
        with socket.create_connection((project.settings.host, port), timeout=5):
            pass  # connected: the port is published and something listens


def test_up_on_a_running_stack_changes_nothing(project: Project, invoke: Invoke) -> None:
    before = started(project)
    result = invoke("up")
    assert started(project) == before
    assert f"image {project.settings.mlflow_image} is up to date" in result.stdout
    assert f"image {project.settings.pgadmin_local_image} is up to date" in result.stdout
    assert "generated files are up to date" in result.stdout
    assert "already exists" in result.stdout  # the bucket
    assert "already lists the server localhost" in result.stdout


def test_pgadmin_runs_compiled_code_and_writes_no_bytecode(project: Project) -> None:
    """pgAdmin runs the image trackstack compiled: no process of it compiles into the data volume."""
    script = (
        'test -z "$PYTHONPYCACHEPREFIX" && test ! -e /var/lib/pgadmin/pycache'
        " && find /pgadmin4 -name '__init__.*.pyc' | wc -l"
    )
    result = engine.compose(project, "exec", "-T", "pgadmin", "sh", "-c", script, capture=True, check=False)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 100  # every package of pgAdmin, compiled in the image


def test_every_mlflow_worker_serves_on_uvloop_and_httptools(project: Project) -> None:
    """uvicorn uses its C event loop and HTTP parser only when it can import them: count the worker
    processes that have both extension modules mapped."""
    script = (
        "n=0; for maps in /proc/[0-9]*/maps; do"
        " grep -q 'uvloop/loop[.]' $maps 2>/dev/null && grep -q 'httptools/parser/parser[.]' $maps 2>/dev/null"
        " && n=$((n+1)); done; echo $n"
    )
    result = engine.compose(project, "exec", "-T", "mlflow", "sh", "-c", script, capture=True, check=False)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) == project.settings.mlflow_workers


def test_up_restores_the_seeded_server_and_keeps_the_ones_added_by_hand(project: Project, invoke: Invoke) -> None:
    settings = project.settings
    pgadmin = PgAdmin(settings.url("PGADMIN_PORT"))
    assert pgadmin.login(settings.pgadmin_default_email, settings.pgadmin_default_password.get_secret_value())
    ((group, ours),) = [(g, n) for g, n in pgadmin.servers() if n["label"] == "localhost"]
    handmade = f"handmade-{uuid.uuid4().hex[:8]}"
    handmade_id = pgadmin.add_server(group, handmade)
    pgadmin.delete_server(group, int(ours["_id"]))
    try:
        result = invoke("up")
        assert "registered server localhost" in result.stdout
        labels = [node["label"] for _, node in pgadmin.servers()]
        assert labels.count("localhost") == 1
        assert handmade in labels
        assert "already lists the server localhost" in invoke("up").stdout
    finally:
        handmade_ids = [int(n["_id"]) for g, n in pgadmin.servers() if n["label"] == handmade]
        for server_id in handmade_ids or [handmade_id]:
            pgadmin.delete_server(group, server_id)


def test_down_then_up_keeps_the_data(project: Project, invoke: Invoke) -> None:
    name = _create_experiment(project)
    invoke("down")
    assert containers(project) == {}
    invoke("up")
    assert name in experiment_names(project)


def test_reset_refuses_without_a_terminal_or_yes(project: Project, invoke: Invoke) -> None:
    name = _create_experiment(project)
    before = started(project)
    result = invoke("reset", check=False)
    assert result.returncode != 0
    assert "--yes" in result.stderr
    assert "experiments" in result.stdout  # it said what it would have deleted
    assert started(project) == before
    assert name in experiment_names(project)
