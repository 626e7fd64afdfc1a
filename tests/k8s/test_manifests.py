"""The real API server checks what the Kubernetes target renders (server-side dry run), not a hand-written schema."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.k8s.conftest import k8s_values, kubectl
from tests.swarm.conftest import write_env
from trackstack.settings import Settings
from trackstack.targets.kubernetes import render as kube
from trackstack.validation import RELAXED, load_settings

NAMESPACE = "ts-dry-run"
IMAGE = "registry.school.example/trackstack-mlflow:3.17.2-0123456789ab"


@pytest.fixture(scope="module")
def settings(cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Every optional part on (Ingress with a class, NodePort, the periodic-jobs pod), in a namespace of its own
    (dry runs need it)."""
    path = tmp_path_factory.mktemp("dry-run") / ".env"
    write_env(path, k8s_values() | {"KUBE_NAMESPACE": NAMESPACE, "KUBE_INGRESS_HOST": "mlflow.school.example",
                                    "KUBE_INGRESS_CLASS": "nginx", "MLFLOW_WORKERS": "2",
                                    "MLFLOW_JOB_EXECUTION": "true",
                                    "MLFLOW_PORT": "30599"})  # the deployed stack holds its NodePort  # fmt: skip
    kubectl("create", "namespace", NAMESPACE, check=False)
    yield load_settings(path, RELAXED)
    kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def dry_run(text: str) -> subprocess.CompletedProcess[str]:
    return kubectl("apply", "--server-side", "--dry-run=server", f"--field-manager={kube.FIELD_MANAGER}",
                   "-f", "-", input_text=text, check=False)  # fmt: skip


def test_the_api_server_accepts_every_rendered_object(settings: Settings) -> None:
    text = kube.manifest_file(kube.render_kube(settings, IMAGE))
    result = dry_run(text)
    assert result.returncode == 0, result.stderr
    applied = [line.split()[0] for line in result.stdout.splitlines()]
    expected = {"namespace/ts-dry-run", "configmap/pgadmin-servers", "service/postgres", "statefulset.apps/postgres",
                "service/minio", "statefulset.apps/minio", "service/pgadmin", "statefulset.apps/pgadmin",
                f"job.batch/{kube.prepare_job_name(settings, IMAGE)}", "deployment.apps/mlflow",
                f"deployment.apps/{kube.PERIODIC}", "service/mlflow", "ingress.networking.k8s.io/mlflow",
                *(f"networkpolicy.networking.k8s.io/{name}" for name in ("default-deny-ingress", "allow-mlflow",
                                                                         "allow-pgadmin", "allow-postgres",
                                                                         "allow-minio"))}  # fmt: skip
    assert set(applied) == expected


def test_the_api_server_accepts_the_secret(settings: Settings) -> None:
    result = dry_run(kube.render_secret(settings))
    assert result.returncode == 0, result.stderr
    assert all(secret not in result.stdout + result.stderr for secret in settings.secret_values())


def test_a_wrong_field_fails_with_the_api_servers_own_message(settings: Settings) -> None:
    text = kube.render_mlflow(settings, IMAGE).replace("imagePullPolicy:", "imagePullPolicyy:", 1)
    result = dry_run(text)
    assert result.returncode != 0
    assert 'containers[name="mlflow"].imagePullPolicyy: field not declared in schema' in result.stderr


def test_a_wrong_value_fails_with_the_api_servers_own_message(settings: Settings) -> None:
    text = kube.render_mlflow(settings, IMAGE).replace("maxUnavailable: 0", "maxUnavailable: -1", 1)
    result = dry_run(text)
    assert result.returncode != 0
    assert "spec.strategy.rollingUpdate.maxUnavailable" in result.stderr, result.stderr
