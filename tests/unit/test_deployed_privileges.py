"""Least privilege on Swarm and Kubernetes: MLflow's own S3 user there too, made on every deploy, never
the root keys in MLflow's environment or secrets (Compose: test_privileges.py)."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from tests.unit.test_kube import KUBERNETES, pod_specs
from tests.unit.test_render import compose_of
from tests.unit.test_swarm import SHARED, stack_of
from trackstack import engine, privileges
from trackstack.project import Project
from trackstack.settings import Settings
from trackstack.targets.kubernetes import apply as kubeapply
from trackstack.targets.kubernetes import render as kube
from trackstack.targets.swarm import apply as swarmapply
from trackstack.targets.swarm import render as swarm
from trackstack.targets.swarm import state as swarmstate
from trackstack.validation import validate

STORES = ("minio", "seaweedfs")
IMAGE = "registry.school.example/trackstack-mlflow:3.17.2-0123456789ab"


def _kube_mlflow(settings: Settings) -> tuple[dict[str, str], set[str]]:
    """MLflow's container on Kubernetes: its plain variables, and the Secret's keys its pod reads."""
    spec = pod_specs(settings)["mlflow"]
    container = next(c for c in spec["containers"] if c["name"] == "mlflow")
    variables = {item["name"]: item.get("value", "") for item in container["env"]}
    keys = {item["key"] for volume in spec["volumes"] if "secret" in volume for item in volume["secret"]["items"]}
    keys |= {item["valueFrom"]["secretKeyRef"]["key"] for item in container["env"] if "valueFrom" in item}
    return variables, keys


@pytest.mark.parametrize("store", STORES)
def test_mlflow_never_gets_the_root_keys_on_any_target(values: dict[str, str], store: str) -> None:
    settings = validate(values | SHARED | KUBERNETES | {"ARTIFACT_STORE": store})
    root_user, own_user = settings.minio_root_user, settings.mlflow_s3_access_key

    compose = compose_of(settings)["services"]["mlflow"]["environment"]
    assert compose["AWS_ACCESS_KEY_ID"] == own_user
    assert "MINIO_ROOT_PASSWORD" not in str(compose)

    mlflow = stack_of(settings)["services"]["mlflow"]
    assert mlflow["environment"]["AWS_ACCESS_KEY_ID"] == own_user
    assert mlflow["environment"]["AWS_SECRET_ACCESS_KEY_FILE"] == "/run/secrets/mlflow_s3_secret_key"
    swarm_secrets = {secret["source"] for secret in mlflow["secrets"]}
    assert "mlflow_s3_secret_key" in swarm_secrets
    assert not {"minio_root_password", "postgres_password"} & swarm_secrets

    variables, keys = _kube_mlflow(settings)
    assert variables["AWS_ACCESS_KEY_ID"] == own_user
    assert variables["AWS_SECRET_ACCESS_KEY_FILE"] == "/run/secrets/mlflow_s3_secret_key"
    assert "mlflow_s3_secret_key" in keys
    assert not {"minio_root_password", "postgres_password"} & keys
    assert root_user not in variables.values()


def test_only_the_prepare_job_gets_the_root_key_in_a_variable_of_its_own(values: dict[str, str]) -> None:
    settings = validate(values | SHARED | KUBERNETES)
    job = next(spec for name, spec in pod_specs(settings).items() if name.startswith(kube.PREPARE_JOB_PREFIX))
    env = {item["name"]: item.get("value", "") for item in job["containers"][0]["env"]}
    assert env["TRACKSTACK_STORE_ROOT_USER"] == settings.minio_root_user
    assert env["TRACKSTACK_STORE_ROOT_PASSWORD_FILE"] == "/run/secrets/minio_root_password"
    assert env["AWS_ACCESS_KEY_ID"] == settings.mlflow_s3_access_key  # what the job checks MLflow reaches


def test_mcs_grant_reads_every_key_from_a_file_never_an_argument(values: dict[str, str]) -> None:
    settings = validate(values | SHARED)
    command = privileges.mc_grant_command(settings, endpoint="http://minio:9000", root_file="/r", own_file="/o")
    assert command[:2] == ["sh", "-c"]
    assert [secret for secret in settings.secret_values() if secret in " ".join(command)] == []
    script = command[2]
    # mc reads the secret key from stdin when it is not an argument (alias set, admin user add).
    assert 'mc alias set --api s3v4 stack "$1" "$2" <"$3"' in script
    assert 'mc admin user add stack "$4" <"$5"' in script
    assert command[4:] == ["http://minio:9000", settings.minio_root_user, "/r", settings.mlflow_s3_access_key, "/o",
                           privileges.bucket_policy_name(settings), command[10], settings.mlflow_bucket]  # fmt: skip
    assert '"arn:aws:s3:::mlflow/*"' in command[10]


def test_the_swarm_grant_job_runs_mc_on_the_data_node_with_both_keys_as_secret_files(values: dict[str, str]) -> None:
    settings = validate(values | SHARED)
    args = swarm.store_grant_job_args(settings)
    assert args[args.index("--mode") + 1] == "replicated-job"
    assert args[args.index("--network") + 1] == "trackstack_backend"
    assert args[args.index("--constraint") + 1] == swarm.DATA_CONSTRAINT  # where MinIO's image already is
    secrets = {args[i + 1].split("target=")[1] for i, arg in enumerate(args) if arg == "--secret"}
    assert secrets == {"minio_root_password", "mlflow_s3_secret_key"}
    image = args.index(settings.minio_image)
    assert args[image + 1 : image + 3] == ["-c", privileges.MC_GRANT]
    assert "/run/secrets/mlflow_s3_secret_key" in args[image:]
    assert [secret for secret in settings.secret_values() if secret in " ".join(args)] == []


class Recorder:
    """Commands run, with what went to their stdin."""

    def __init__(self) -> None:
        self.ran: list[tuple[list[str], str | None]] = []

    def run(self, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.ran.append((list(args), kwargs.get("input_text")))
        return subprocess.CompletedProcess(args, 0, stdout="MinIO: MLflow's user ... only\n", stderr="")


def test_swarm_makes_minios_user_with_the_job(
    values: dict[str, str], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = validate(values | SHARED)
    jobs: list[tuple[str, list[str]]] = []

    def run_job(project: Project, task: str, args: list[str]) -> tuple[str, str]:
        jobs.append((task, args))
        return "complete", ""

    monkeypatch.setattr(swarmapply, "run_job", run_job)
    swarmapply.grant_store(Project(tmp_path, tmp_path / ".env", settings))
    assert jobs == [("grant", swarm.store_grant_job_args(settings))]


def test_swarm_makes_seaweedfs_identity_in_its_container_on_stdin(
    values: dict[str, str], tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = validate(values | SHARED | {"ARTIFACT_STORE": "seaweedfs"})
    recorder = Recorder()
    monkeypatch.setattr(engine, "run", recorder.run)
    monkeypatch.setattr(swarmstate, "task_container", lambda settings, service: f"{service}-task")
    swarmapply.grant_store(Project(tmp_path, tmp_path / ".env", settings))
    [(args, stdin)] = recorder.ran
    assert args == ["docker", "exec", "-i", "minio-task", *privileges.WEED_SHELL]
    assert stdin == privileges.seaweedfs_configure(settings)


@pytest.mark.parametrize("store", STORES)
def test_kubernetes_makes_mlflows_user_inside_the_stores_pod(
    values: dict[str, str], store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = validate(values | KUBERNETES | {"ARTIFACT_STORE": store})
    recorder = Recorder()
    monkeypatch.setattr(kubeapply, "run", recorder.run)
    kubeapply.grant_store(settings)
    [(args, stdin)] = recorder.ran
    exec_in_store = kubeapply.kubectl(settings, "exec", "-i", "minio-0", "-c", "minio", "--")
    assert args[: len(exec_in_store)] == exec_in_store
    assert [secret for secret in settings.secret_values() if secret in " ".join(args)] == []
    if store == "seaweedfs":
        assert args[len(exec_in_store) :] == list(privileges.WEED_SHELL)
        assert stdin == privileges.seaweedfs_configure(settings)
    else:  # the root password from the pod's own secret file; MLflow's key on stdin
        assert "/run/secrets/minio_root_password" in args
        assert "/dev/stdin" in args
        assert stdin == settings.mlflow_s3_secret_key.get_secret_value()
