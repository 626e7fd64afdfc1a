"""Reading the swarm (swarmstate.py) from what Docker prints; no Docker needed."""

from __future__ import annotations

import re

import pytest

from trackstack.targets.swarm import state as swarmstate
from trackstack.targets.swarm.state import DeployError, Node, ServiceState, Task


def test_replicas_as_docker_service_ls_prints_them() -> None:
    assert swarmstate.parse_replicas("2/3") == (2, 3)
    assert swarmstate.parse_replicas("1/1 (max 1 per node)") == (1, 1)
    assert swarmstate.parse_replicas("0/1 (1/1 completed)") == (0, 1)


def test_services_drop_the_image_digest() -> None:
    rows = [{"Name": "ts_mlflow", "Replicas": "1/2", "Image": "reg:5000/m:3.17.2-abc@sha256:00"}]
    assert swarmstate.parse_services(rows) == {"ts_mlflow": ServiceState("ts_mlflow", 1, 2, "reg:5000/m:3.17.2-abc")}


def test_tasks_as_docker_service_ps_prints_them() -> None:
    rows = [
        {"Name": "ts_mlflow.1", "CurrentState": "Running 5 seconds ago", "DesiredState": "Running", "Node": "n1"},
        {"Name": " \\_ ts_mlflow.1", "CurrentState": "Failed 1 minute ago", "DesiredState": "Shutdown",
         "Error": "task: non-zero exit (1)", "Node": "n2"},
    ]  # fmt: skip
    first, second = swarmstate.parse_tasks(rows)
    assert first == Task("ts_mlflow", "running", "running", "", "n1")
    assert second == Task("ts_mlflow", "failed", "shutdown", "task: non-zero exit (1)", "n2")


def test_converged_means_every_wanted_task_runs_and_no_update_is_under_way() -> None:
    two = ServiceState("ts_mlflow", 2, 2, "image")
    running = Task("ts_mlflow", "running", "running", "", "n1")
    starting = Task("ts_mlflow", "starting", "running", "", "n2")
    old = Task("ts_mlflow", "shutdown", "shutdown", "", "n2")
    assert swarmstate.converged(two, [running, running, old], "completed")
    assert not swarmstate.converged(two, [running, running], "updating")
    assert not swarmstate.converged(two, [running, running, starting], "")  # start-first: a third on its way
    assert not swarmstate.converged(ServiceState("ts_mlflow", 1, 2, "image"), [running], "")


def test_only_a_manager_deploys() -> None:
    assert swarmstate.manager_problem({"LocalNodeState": "active", "ControlAvailable": True}) is None
    inactive = swarmstate.manager_problem({"LocalNodeState": "inactive"})
    assert inactive is not None
    assert "docker swarm init" in inactive
    worker = swarmstate.manager_problem({"LocalNodeState": "active", "ControlAvailable": False})
    assert worker is not None
    assert "DOCKER_HOST" in worker


def _node(name: str, **labels: str) -> Node:
    return Node(hostname=name, address=f"10.0.0.{name[-1]}", labels=labels, ready=True)


def test_the_data_node_is_the_one_labelled() -> None:
    nodes = [_node("n1"), _node("n2", **{"trackstack.data": "true"})]
    assert swarmstate.choose_data_node(nodes).hostname == "n2"
    with pytest.raises(DeployError, match=re.escape("docker node update --label-add trackstack.data=true")):
        swarmstate.choose_data_node([_node("n1")])
    with pytest.raises(DeployError, match="2 nodes are labelled"):
        swarmstate.choose_data_node([_node("n1", **{"trackstack.data": "true"}), *nodes])


def test_nodes_from_docker_node_inspect() -> None:
    inspected = [
        {"Spec": {"Labels": {"trackstack.data": "true"}}, "Status": {"State": "ready", "Addr": "10.0.0.1"},
         "Description": {"Hostname": "n1"}},
    ]  # fmt: skip
    assert swarmstate.parse_nodes(inspected) == [Node("n1", "10.0.0.1", {"trackstack.data": "true"}, True)]


def test_waiting_ends_when_every_service_converged_twice(monkeypatch: pytest.MonkeyPatch) -> None:
    polls = iter([1, 2, 2, 2])  # running replicas of ts_mlflow, poll by poll
    state = {"now": 0}

    def services(project: str) -> dict[str, ServiceState]:
        state["now"] = next(polls)
        return {"ts_mlflow": ServiceState("ts_mlflow", state["now"], 2, "image")}

    def tasks(*names: str) -> list[Task]:
        return [Task("ts_mlflow", "running", "running", "", "n1")] * state["now"]

    monkeypatch.setattr(swarmstate, "services", services)
    monkeypatch.setattr(swarmstate, "tasks", tasks)
    monkeypatch.setattr(swarmstate, "update_states", lambda *names: dict.fromkeys(names, "completed"))
    sleeps: list[float] = []
    swarmstate.wait_converged("ts", ("ts_mlflow",), timeout=60, clock=lambda: 0.0, sleep=sleeps.append)
    assert len(sleeps) == 2  # 1/2, then 2/2 once, then 2/2 again: done


def test_a_rolled_back_update_fails_the_deploy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(swarmstate, "services", lambda project: {"ts_mlflow": ServiceState("ts_mlflow", 2, 2, "i")})
    monkeypatch.setattr(swarmstate, "tasks", lambda *names: [])
    monkeypatch.setattr(swarmstate, "update_states", lambda *names: {"ts_mlflow": "rollback_completed"})
    monkeypatch.setattr(swarmstate, "_report", lambda project, names, found, by_service, what: f"{names}: {what}")
    with pytest.raises(DeployError, match="rolled back"):
        swarmstate.wait_converged("ts", ("ts_mlflow",), timeout=60, clock=lambda: 0.0, sleep=lambda _: None)
