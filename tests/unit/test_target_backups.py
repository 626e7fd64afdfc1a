"""Each target's way to its data for a backup and a restore (its `StackData`), with a fake kubectl or a fake
Docker engine in front of an in-memory stack (tests/unit/fake_stack.py): the commands each runs, and that
a backup written on one target restores on another."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import pytest

from tests.unit.fake_stack import FakeBucket, FakeStack
from tests.unit.test_kube import KUBERNETES
from tests.unit.test_targets import SHARED
from trackstack import backups, engine
from trackstack.backup_format import verify
from trackstack.errors import TrackstackError
from trackstack.project import Project
from trackstack.settings import Settings
from trackstack.targets.kubernetes import access as kube_access
from trackstack.targets.kubernetes import apply as kube_apply
from trackstack.targets.kubernetes import backup as kube_backup
from trackstack.targets.kubernetes import render as kube_render
from trackstack.targets.kubernetes.target import KubernetesTarget
from trackstack.targets.swarm import apply as swarm_apply
from trackstack.targets.swarm import state as swarm_state
from trackstack.targets.swarm.target import SwarmTarget
from trackstack.validation import validate

IMAGE = "registry.school.example/trackstack-mlflow:3.18.0-0123abcd"


def _option(args: list[str], flag: str) -> str:
    return args[args.index(flag) + 1]


class FakeKubectl:
    """kubectl in front of a `FakeStack`: exec runs psql, pg_dump and pg_restore on it; scale moves its MLflow."""

    def __init__(self, stack: FakeStack) -> None:
        self.stack = stack
        self.ran: list[list[str]] = []
        self.replicas = 2

    def run(self, args: list[str], *, input_text: str | None = None, check: bool = True) -> Any:
        args = list(args)
        self.ran.append(args)
        out = ""
        if "exec" in args and "psql" in args:
            out = self.stack.psql(input_text or "", database=_option(args, "-d"))
        elif "get" in args and "deployment" in args:
            out = json.dumps({"spec": {"replicas": self.replicas, "template": {"spec": {"containers": [
                {"image": IMAGE}]}}}, "status": {"readyReplicas": self.replicas}})  # fmt: skip
        elif "get" in args and "jobs" in args:
            out = json.dumps({"items": []})
        elif "get" in args and "job" in args:
            out = json.dumps({"status": {"conditions": [{"type": "Complete", "status": "True"}]}})
        elif "scale" in args:
            self.replicas = int(args[-1].removeprefix("--replicas="))
            self.stack.events.append(f"scale {args[-2]} {self.replicas}")
            self.stack.mlflow_running = self.replicas > 0
        elif "config" in args:
            out = "school-cluster\n"
        elif "delete" in args:
            self.stack.events.append(f"delete {args[args.index('delete') + 2]}")
        elif "apply" in args and input_text and "kind: Job" in input_text:
            self.stack.events.append("prepare job")
        return subprocess.CompletedProcess(args, 0, stdout=out, stderr="")

    def run_binary(self, args: list[str], *, stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None) -> None:
        args = list(args)
        self.ran.append(args)
        if "pg_dump" in args:
            assert stdout is not None
            self.stack.dump(_option(args, "-d"), stdout)
        elif "pg_restore" in args:
            assert stdin is not None
            self.stack.load(stdin, database=_option(args, "-d"))


@pytest.fixture
def kube_settings(values: dict[str, str]) -> Settings:
    return validate(values | KUBERNETES)


def stack_of(settings: Settings) -> FakeStack:
    return FakeStack(
        settings,
        databases={"postgres": "", settings.postgres_db: "runs v1", settings.mlflow_auth_db: "users: admin, ann"},
        objects={"1/a/artifacts/model.bin": b"weights"},
        runs=1,
        target="compose",
    )


@pytest.fixture
def kube(kube_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> FakeKubectl:
    fake = FakeKubectl(stack_of(kube_settings))
    monkeypatch.setattr(kube_apply, "run", fake.run)
    monkeypatch.setattr(kube_access, "run", fake.run)
    monkeypatch.setattr(kube_apply, "run_binary", fake.run_binary)
    forwarded: list[tuple[str, int]] = []

    @contextmanager
    def port_forwards(settings: Settings, forwards: Any, **kwargs: Any) -> Iterator[Any]:
        state = kube_access.Forwarding()
        for forward in forwards:
            forwarded.append((forward.service, forward.remote_port))
            state.local[(forward.service, forward.remote_port)] = 41234
        yield state

    monkeypatch.setattr(kube_access, "port_forwards", port_forwards)
    endpoints: list[str | None] = []

    def bucket(settings: Settings, endpoint: str | None = None) -> FakeBucket:
        endpoints.append(endpoint)
        return FakeBucket(fake.stack.objects)

    monkeypatch.setattr(kube_backup, "MinioBucket", bucket)
    fake.forwarded, fake.endpoints = forwarded, endpoints  # type: ignore[attr-defined]
    return fake


def test_kubernetes_backs_up_through_kubectl_exec_and_a_port_forward_of_minio(
    kube: FakeKubectl, kube_settings: Settings, tmp_path: Path
) -> None:
    folder = KubernetesTarget(Project(tmp_path, tmp_path / ".env", kube_settings)).backup(tmp_path / "backups")
    manifest = verify(folder)
    assert manifest["target"] == "kubernetes"
    assert manifest["auth_database"] == kube_settings.mlflow_auth_db
    dumps = [args for args in kube.ran if "pg_dump" in args]
    assert [args[args.index("exec") :][:6] for args in dumps] == [
        ["exec", "-i", "postgres-0", "-c", "postgres", "--"]
    ] * 2
    assert [_option(args, "-d") for args in dumps] == [kube_settings.postgres_db, kube_settings.mlflow_auth_db]
    assert all(args[:5] == ["kubectl", "--context", "school-cluster", "--namespace", "trackstack"] for args in dumps)
    assert kube.forwarded == [("minio", 9000)]  # type: ignore[attr-defined]
    assert kube.endpoints == ["127.0.0.1:41234"]  # type: ignore[attr-defined]


def test_kubernetes_restores_with_mlflow_scaled_to_0_and_prepares_the_restored_data(
    kube: FakeKubectl, kube_settings: Settings, tmp_path: Path
) -> None:
    target = KubernetesTarget(Project(tmp_path, tmp_path / ".env", kube_settings))
    folder = target.backup(tmp_path / "backups")
    stack = kube.stack
    stack.databases |= {kube_settings.postgres_db: "runs v2", kube_settings.mlflow_auth_db: "users: admin"}
    stack.objects["2/b/artifacts/new.txt"] = b"new"
    stack.events.clear()

    target.restore(folder, yes=True)

    assert stack.databases[kube_settings.mlflow_auth_db] == "users: admin, ann"
    assert stack.databases[kube_settings.postgres_db] == "runs v1"
    assert stack.objects == {"1/a/artifacts/model.bin": b"weights"}
    rename = next(e for e in stack.events if e.startswith("rename"))
    job = kube_render.prepare_job_name(kube_settings, IMAGE)
    assert stack.events == ["scale deployment/mlflow 0", rename, f"delete {job}",
                            "prepare job", "scale deployment/mlflow 2"]  # fmt: skip
    restores = [args for args in kube.ran if "pg_restore" in args]
    assert {"--no-owner", "--single-transaction", "--exit-on-error"} <= set(restores[0])


def test_a_compose_backup_restores_on_kubernetes(kube: FakeKubectl, kube_settings: Settings, tmp_path: Path) -> None:
    """The same manifest and checks: a backup written by the compose stack (its target in the manifest)."""
    compose_stack = stack_of(kube_settings.model_copy(update={"mlflow_auth": False}))
    compose_stack.databases[kube_settings.postgres_db] = "runs of the laptop"
    folder = backups.backup(compose_stack, tmp_path / "laptop")
    assert verify(folder)["target"] == "compose"
    KubernetesTarget(Project(tmp_path, tmp_path / ".env", kube_settings)).restore(folder, yes=True)
    assert kube.stack.databases[kube_settings.postgres_db] == "runs of the laptop"


class FakeEngine:
    """The Docker engine of the data node in front of a `FakeStack`: docker exec runs psql, pg_dump, pg_restore
    and mc on it; `docker service scale` moves its MLflow."""

    def __init__(self, stack: FakeStack) -> None:
        self.stack = stack
        self.ran: list[list[str]] = []
        self.inputs: list[str] = []

    def _mc(self, args: list[str]) -> list[str]:
        return args[args.index("--config-dir") + 2 :] if "mc" in args else []

    def run(self, args: list[str], *, capture: bool = False, check: bool = True, input_text: str | None = None,
            **kwargs: Any) -> Any:  # fmt: skip
        args = list(args)
        self.ran.append(args)
        self.inputs.append(input_text or "")
        out = ""
        mc = self._mc(args)
        if args[:2] == ["docker", "ps"]:
            out = "postgres-task\n" if "postgres" in " ".join(args) else "minio-task\n"
        elif "psql" in args:
            out = self.stack.psql(input_text or "", database=_option(args, "-d"))
        elif mc[:2] == ["--json", "ls"]:
            out = "".join(json.dumps({"status": "success", "type": "file", "key": key, "etag": etag}) + "\n"
                          for key, etag in FakeBucket(self.stack.objects).listing().items())  # fmt: skip
        elif mc[:1] == ["rm"]:
            self.stack.objects.pop(mc[1].split("/", 2)[2])
        elif args[:3] == ["docker", "service", "scale"]:
            replicas = int(args[-1].rpartition("=")[2])
            self.stack.events.append(f"scale {args[-1]}")
            self.stack.mlflow_running = replicas > 0
        elif args[:3] == ["docker", "service", "inspect"]:
            out = IMAGE + "\n"
        return subprocess.CompletedProcess(args, 0, stdout=out, stderr="")

    def stream(self, args: list[str], *, stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None) -> None:
        args = list(args)
        self.ran.append(args)
        self.inputs.append("")  # binary: a dump or an object
        mc = self._mc(args)
        if "pg_dump" in args:
            assert stdout is not None
            self.stack.dump(_option(args, "-d"), stdout)
        elif "pg_restore" in args:
            assert stdin is not None
            self.stack.load(stdin, database=_option(args, "-d"))
        elif mc[:1] == ["cat"]:
            assert stdout is not None
            stdout.write(self.stack.objects[mc[1].split("/", 2)[2]])
        elif mc[:1] == ["pipe"]:
            assert stdin is not None
            self.stack.objects[mc[1].split("/", 2)[2]] = stdin.read()


@pytest.fixture
def swarm_settings(values: dict[str, str]) -> Settings:
    return validate(values | SHARED)


@pytest.fixture
def docker(swarm_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    fake = FakeEngine(stack_of(swarm_settings))
    monkeypatch.setattr(engine, "run", fake.run)
    monkeypatch.setattr(engine, "stream", fake.stream)
    monkeypatch.setattr(swarm_state, "wait_converged", lambda *args, **kwargs: None)
    monkeypatch.setattr(swarm_state, "desired_replicas", lambda name: 2)
    monkeypatch.setattr(swarm_apply, "prepare", lambda project, image: fake.stack.events.append(f"prepare {image}"))
    return fake


def test_swarm_backs_up_through_docker_exec_in_the_data_nodes_task_containers(
    docker: FakeEngine, swarm_settings: Settings, tmp_path: Path
) -> None:
    folder = SwarmTarget(Project(tmp_path, tmp_path / ".env", swarm_settings)).backup(tmp_path / "backups")
    manifest = verify(folder)
    assert manifest["target"] == "swarm"
    assert set(manifest["files"]) == {"postgres.dump", "auth.dump", "artifacts/1/a/artifacts/model.bin"}
    assert (folder / "artifacts/1/a/artifacts/model.bin").read_bytes() == b"weights"
    dumps = [args for args in docker.ran if "pg_dump" in args]
    assert [args[:4] for args in dumps] == [["docker", "exec", "-i", "postgres-task"]] * 2
    secret = swarm_settings.minio_root_password.get_secret_value()
    assert not [args for args in docker.ran if secret in " ".join(args)]  # MinIO's login only on stdin
    imported = docker.inputs[next(i for i, args in enumerate(docker.ran) if "import" in args)]
    assert json.loads(imported)["secretKey"] == secret
    assert docker.ran[-1][:3] == ["docker", "exec", "minio-task"]  # mc's login removed again
    assert docker.ran[-1][3:5] == ["rm", "-rf"]


def test_swarm_restores_with_mlflow_scaled_to_0_and_prepares_the_restored_data(
    docker: FakeEngine, swarm_settings: Settings, tmp_path: Path
) -> None:
    target = SwarmTarget(Project(tmp_path, tmp_path / ".env", swarm_settings))
    folder = target.backup(tmp_path / "backups")
    stack = docker.stack
    stack.databases |= {swarm_settings.postgres_db: "runs v2", swarm_settings.mlflow_auth_db: "users: admin"}
    stack.objects |= {"1/a/artifacts/model.bin": b"retrained", "2/b/artifacts/new.txt": b"new"}
    stack.events.clear()

    target.restore(folder, yes=True)

    assert stack.databases[swarm_settings.mlflow_auth_db] == "users: admin, ann"
    assert stack.objects == {"1/a/artifacts/model.bin": b"weights"}
    rename = next(e for e in stack.events if e.startswith("rename"))
    mlflow = f"{swarm_settings.compose_project_name}_mlflow"
    assert stack.events == [f"scale {mlflow}=0", rename, f"prepare {IMAGE}", f"scale {mlflow}=2"]


def test_swarm_says_where_to_run_when_the_data_node_is_another_engine(
    docker: FakeEngine, swarm_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = docker.run

    def elsewhere(args: list[str], **kwargs: Any) -> Any:
        return (
            subprocess.CompletedProcess(args, 0, stdout="", stderr="")
            if args[:2] == ["docker", "ps"]
            else real(args, **kwargs)
        )

    monkeypatch.setattr(engine, "run", elsewhere)
    with pytest.raises(TrackstackError, match="point DOCKER_HOST at its engine") as raised:
        SwarmTarget(Project(tmp_path, tmp_path / ".env", swarm_settings)).backup(tmp_path / "backups")
    assert "trackstack.data=true" in str(raised.value)
    assert not (tmp_path / "backups").exists() or not list((tmp_path / "backups").iterdir())
