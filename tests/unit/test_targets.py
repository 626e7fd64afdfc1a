"""Each target behind the one interface, without Docker or a cluster: which target a task gets, and what
each does with a fake engine (`engine.run`/`engine.compose`) or a fake kubectl (`apply.run`/`apply.stream`)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_kube import KUBERNETES
from trackstack import engine, targets
from trackstack.doctor import EXPOSURE
from trackstack.errors import TrackstackError
from trackstack.project import Project
from trackstack.settings import Settings
from trackstack.targets.base import Status
from trackstack.targets.kubernetes import apply as kube_apply
from trackstack.targets.kubernetes.target import KubernetesTarget
from trackstack.targets.swarm import state as swarm_state
from trackstack.targets.swarm.state import ServiceState
from trackstack.validation import validate

SHARED = {"MLFLOW_AUTH": "true", "MLFLOW_PUBLIC_HOSTS": "mlflow.school.example",
          "MLFLOW_IMAGE_REPOSITORY": "registry.school.example/trackstack-mlflow"}  # fmt: skip


def project_of(settings: Settings, tmp_path: Path) -> Project:
    return Project(root=tmp_path, env_file=tmp_path / ".env", settings=settings)


@pytest.fixture
def swarm_deployed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(swarm_state, "services", lambda name: {f"{name}_mlflow": ServiceState("x", 2, 2, "i")})


@pytest.fixture
def nothing_deployed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(swarm_state, "services", lambda name: {})


def test_kubernetes_in_env_means_kubernetes_for_every_task_but_the_local_ones(
    values: dict[str, str], tmp_path: Path, swarm_deployed: None
) -> None:
    project = project_of(validate(values | KUBERNETES), tmp_path)
    assert targets.for_project(project).name == "kubernetes"  # even with a stack on this engine's swarm
    assert targets.for_project(project, "shared").name == "kubernetes"
    assert targets.for_project(project, "local").name == "compose"


def test_a_stack_on_this_engines_swarm_means_swarm(
    values: dict[str, str], tmp_path: Path, swarm_deployed: None
) -> None:
    project = project_of(validate(values | SHARED), tmp_path)
    assert targets.for_project(project).name == "swarm"
    assert targets.for_project(project, "local").name == "compose"


def test_nothing_deployed_means_compose_and_deploy_means_swarm(
    values: dict[str, str], tmp_path: Path, nothing_deployed: None
) -> None:
    project = project_of(validate(values), tmp_path)
    assert targets.for_project(project).name == "compose"
    assert targets.for_project(project, "shared").name == "swarm"


def test_compose_logs_run_docker_compose_logs(values: dict[str, str], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    ran: list[tuple[str, ...]] = []
    monkeypatch.setattr(engine, "compose", lambda project, *args, **kwargs: ran.append(args))
    project = project_of(validate(values), tmp_path)
    project.compose_file.write_text("services: {}\n", encoding="utf-8")  # rendered already
    targets.for_project(project, "local").logs("mlflow", follow=True, tail=7)
    assert ran == [("logs", "--tail", "7", "--follow", "mlflow")]


def test_kubernetes_logs_ask_kubectl_for_one_services_pods_or_every_pod(
    values: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ran: list[list[str]] = []
    monkeypatch.setattr(kube_apply, "stream", lambda args: ran.append(list(args)))
    target = KubernetesTarget(project_of(validate(values | KUBERNETES), tmp_path))
    target.logs("mlflow", follow=True, tail=20)
    target.logs("", follow=False, tail=100)
    one, each = ran
    assert one[:5] == ["kubectl", "--context", "school-cluster", "--namespace", "trackstack"]
    assert (
        "app.kubernetes.io/part-of=trackstack,app.kubernetes.io/instance=trackstack,app.kubernetes.io/name=mlflow"
        in one
    )
    assert {"--tail=20", "--follow", "--prefix"} <= set(one)
    assert "app.kubernetes.io/name" not in each[each.index("-l") + 1]
    assert "--follow" not in each
    with pytest.raises(TrackstackError, match="choose one of mlflow, pgadmin, minio, postgres"):
        target.logs("mlfow", follow=False, tail=1)


def test_kubernetes_status_is_the_one_status_shape(values: dict[str, str], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(args, 0, stdout='{"items": []}', stderr="")

    monkeypatch.setattr(kube_apply, "run", run)
    status = KubernetesTarget(project_of(validate(values | KUBERNETES), tmp_path)).status()
    assert status == Status(("WORKLOAD", "READY", "IMAGE"), [])
    assert status.text() == "nothing deployed"


def test_kubernetes_doctor_names_a_context_that_does_not_answer(
    values: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(args, 0, stdout="other-cluster\n", stderr="")

    monkeypatch.setattr(kube_apply, "run", run)
    env = tmp_path / ".env"
    env.write_text("".join(f"{k}={v}\n" for k, v in (values | KUBERNETES).items()), encoding="utf-8")
    checks = KubernetesTarget(project_of(validate(values | KUBERNETES), tmp_path)).doctor_checks()
    assert [(c.name, c.level) for c in checks if not c.name.startswith(EXPOSURE)] == [("kubernetes context", "fail")]
    assert "KUBE_CONTEXT" in checks[0].fix
