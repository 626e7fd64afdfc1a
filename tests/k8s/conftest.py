"""Kubernetes, live: `invoke deploy` with DEPLOY_TARGET=kubernetes against the test bed's cluster.

Needs the single-node cluster of tests/k8s/cluster.sh (`cluster.sh up`): its kubeconfig
(TRACKSTACK_TEST_KUBECONFIG, default the bed's) with context trackstack-test, and its kubectl.
The bed has no registry and no volume provisioner, so this fixture does what a cluster's admin
and registry would: it creates hostPath PersistentVolumes for the stack's claims, builds the
MLflow image with the product's own build step, and loads every image into the node
(`cluster.sh load`); the product deploys with MLFLOW_IMAGE_PUSH=false. Without a cluster the
suite skips, unless TRACKSTACK_TEST_K8S=required (CI), which turns that into a failure.

The smoke suite runs against the deployed stack too (test_smoke_suite.py): `target` and
`auth_stack` here are its way in.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import NoReturn

import pytest
from dotenv import dotenv_values

from tests.conftest import (
    PUBLIC_HOST,
    ROOT,
    AuthStack,
    Target,
    bed_unavailable,
    engine_lock,
    fresh_secrets,
    progress,
)
from tests.live.cleanup import gc_args, purge_experiment
from tests.swarm.conftest import Deployed, invoke, write_env
from trackstack.mlflow_image import build_image
from trackstack.project import Project
from trackstack.settings import Settings
from trackstack.targets.kubernetes import access as kubeaccess
from trackstack.targets.kubernetes import render as kube
from trackstack.targets.kubernetes import views as kubeviews
from trackstack.validation import RELAXED, load_settings

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("TRACKSTACK_TESTBED_CACHE", "/var/cache/trackstack-testbed")) / "k8s"
KUBECONFIG = Path(os.environ.get("TRACKSTACK_TEST_KUBECONFIG", "") or CACHE / "kubeconfig")
CONTEXT = os.environ.get("TRACKSTACK_TEST_KUBE_CONTEXT", "trackstack-test")
PROJECT = os.environ.get("TRACKSTACK_TEST_K8S_PROJECT", "tsk8s")
NODE_PORT = int(os.environ.get("TRACKSTACK_TEST_K8S_PORT", "30501"))
STORAGE_CLASS = "trackstack-hostpath"
ENV_FILE = Path(os.environ.get("TRACKSTACK_TEST_K8S_ENV_FILE", "") or ROOT / f".env.{PROJECT}")


def _unavailable(reason: str) -> NoReturn:
    bed_unavailable("TRACKSTACK_TEST_K8S", reason)


def kubectl(*args: str, check: bool = True, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["kubectl", "--context", CONTEXT, *args], capture_output=True, text=True,
                          input=input_text, check=check, timeout=600)  # fmt: skip


@pytest.fixture(scope="session")
def cluster() -> None:
    """The bed's cluster answers; kubectl (the bed's build, first on PATH) and KUBECONFIG for every child."""
    if not KUBECONFIG.is_file():
        _unavailable(f"no kubeconfig at {KUBECONFIG}: start the bed with `tests/k8s/cluster.sh up`")
    os.environ["KUBECONFIG"] = str(KUBECONFIG)
    if (CACHE / "bin" / "kubectl").is_file():
        os.environ["PATH"] = f"{CACHE / 'bin'}{os.pathsep}{os.environ['PATH']}"
    try:
        kubectl("get", "--raw", "/readyz", "--request-timeout=10s")
    except (subprocess.CalledProcessError, FileNotFoundError) as error:
        _unavailable(f"the cluster in {KUBECONFIG} does not answer: {error}")


def k8s_values(project: str = PROJECT, node_port: int = NODE_PORT) -> dict[str, str]:
    return fresh_secrets() | {
        "COMPOSE_PROJECT_NAME": project,
        # TRACKSTACK_TEST_ARTIFACT_STORE=seaweedfs runs the whole suite on SeaweedFS.
        "ARTIFACT_STORE": os.environ.get("TRACKSTACK_TEST_ARTIFACT_STORE", "minio"),
        "MLFLOW_AUTH": "true",
        "MLFLOW_PUBLIC_HOSTS": PUBLIC_HOST,  # the smoke suite's host-name checks (test_auth.py)
        "MLFLOW_REPLICAS": "2",
        "MLFLOW_WORKERS": "1",
        "MLFLOW_PORT": str(node_port),
        "MLFLOW_IMAGE_REPOSITORY": f"trackstack-test/{project}-mlflow",
        "MLFLOW_IMAGE_PUSH": "false",  # no registry on the bed: the fixture loads the image into the node
        "DEPLOY_TARGET": "kubernetes",
        "KUBE_CONTEXT": CONTEXT,
        "KUBE_NAMESPACE": project,
        "KUBE_STORAGE_CLASS": STORAGE_CLASS,
        "KUBE_MLFLOW_SERVICE": "NodePort",
        # The shared smoke suite (tests/live) reaches MLflow at Settings.mlflow_url, plain HTTP: the bed's
        # NodePort stands for one behind a TLS front. (MLflow's own TLS on the NodePort, with verifying
        # clients: test_tls.py, which deploys this stack once without this key.)
        "TLS_TERMINATED_IN_FRONT": "true",
        # Where `invoke open` forwards pgAdmin and MinIO: clear of a compose stack on the course ports.
        "POSTGRES_PORT": "35432",
        "MINIO_API_PORT": "39000",
        "MINIO_CONSOLE_PORT": "39001",
        "PGADMIN_PORT": "35051",
    }


@pytest.fixture(scope="session")
def env_file(cluster: None) -> Path:
    """A fresh `.env` with new secrets: the suite starts from a clean namespace."""
    write_env(ENV_FILE, k8s_values())
    return ENV_FILE


def project_of(env_file: Path) -> Project:
    return Project(root=ROOT, env_file=env_file, settings=load_settings(env_file, RELAXED))


def clean_namespace(settings: Settings) -> None:
    """No namespace, claims or volumes of an earlier run; new hostPath volumes, pre-bound to the claims."""
    namespace = kube.namespace(settings)
    kubectl("delete", "namespace", namespace, "--ignore-not-found", "--wait=true", "--timeout=300s")
    for service in kube.data_services(settings):
        assert service.volume is not None
        claim = f"{service.volume.name}-{service.name}-0"  # a StatefulSet's claim: TEMPLATE-POD
        name = f"{namespace}-{claim}"
        kubectl("delete", "pv", name, "--ignore-not-found", "--wait=true", "--timeout=120s")
        path = CACHE / "run" / "pv" / name
        subprocess.run(["rm", "-rf", str(path)], check=True)
        path.mkdir(parents=True)
        path.chmod(0o777)  # hostPath ignores fsGroup: pgAdmin (uid 5050) must write here too
        kubectl(
            "apply",
            "-f",
            "-",
            input_text=f"""
apiVersion: v1
kind: PersistentVolume
metadata: {{name: {name}, labels: {{app.kubernetes.io/part-of: trackstack-test}}}}
spec:
  capacity: {{storage: {kube.storage(settings)[service.name]}}}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: {STORAGE_CLASS}
  claimRef: {{namespace: {namespace}, name: {claim}}}
  hostPath: {{path: {path}, type: Directory}}
""",
        )


def load_images(project: Project) -> str:
    """Build MLflow's image as `invoke deploy` does (no push) and load it and the pinned images into the node."""
    settings = project.settings
    with engine_lock(exclusive=False):  # a daemon-restart test may run beside this suite
        image = build_image(project, push=False)
    subprocess.run(["bash", str(HERE / "cluster.sh"), "load", image, settings.postgres_image,
                    settings.image(settings.store), settings.pgadmin_image],
                   check=True, capture_output=True, text=True)  # fmt: skip
    return image


@pytest.fixture(scope="session")
def deployed(env_file: Path) -> Iterator[Deployed]:
    """A clean namespace, `invoke deploy` once for the session; `invoke undeploy` at its end (claims stay)."""
    project = project_of(env_file)
    started = time.monotonic()
    clean_namespace(project.settings)
    load_images(project)
    progress(f"[k8s] clean namespace and images in the node after {time.monotonic() - started:.0f}s")
    started = time.monotonic()
    result = invoke("deploy", env_file=env_file)
    if result.returncode != 0:
        pytest.fail(f"invoke deploy failed:\n{result.stdout}\n{result.stderr}", pytrace=False)
    progress(f"[k8s] deployed in {time.monotonic() - started:.0f}s")
    settings = project.settings
    admin = (settings.mlflow_admin_user, settings.mlflow_admin_password.get_secret_value())
    yield Deployed(project, f"http://127.0.0.1:{NODE_PORT}", admin, ca="")
    if not os.environ.get("TRACKSTACK_TEST_K8S_KEEP"):
        invoke("undeploy", env_file=env_file)


def kube_gc(settings: Settings, experiment_id: str, runs: list[str]) -> None:
    """`mlflow gc` in an MLflow pod: the image's entrypoint reads the Secret's files, gc logs in as the admin."""
    login = 'MLFLOW_TRACKING_USERNAME="$MLFLOW_ADMIN_USER" MLFLOW_TRACKING_PASSWORD="$MLFLOW_ADMIN_PASSWORD" exec "$@"'
    kubectl("-n", kube.namespace(settings), "exec", "deployment/mlflow", "-c", "mlflow", "--",
            # Without the server's Prometheus folder: the entrypoint would empty it under the running server.
            "env", "-u", "PROMETHEUS_MULTIPROC_DIR", f"MLFLOW_TRACKING_URI=http://{kube.MLFLOW_IN_CLUSTER_HOST}",
            "python", "-I", "-S", "/usr/local/bin/trackstack-entrypoint.py",
            "sh", "-c", login, "sh", *gc_args(settings, experiment_id, runs))  # fmt: skip


@pytest.fixture(scope="session")
def target(deployed: Deployed) -> Iterator[Target]:
    """The deployed stack as the smoke suite reaches it: MLflow on its NodePort (its Service, through
    kube-proxy), Postgres, MinIO and pgAdmin through `kubectl port-forward`s of their Services (the
    product's own, on ports kubectl picks), MLflow's admin logged in."""
    settings = deployed.settings
    endpoints = [(service.name, endpoint) for service in kube.data_services(settings) for endpoint in service.endpoints]
    forwards = [kubeviews.Forward(name, 0, endpoint.container_port) for name, endpoint in endpoints]
    with kubeaccess.port_forwards(settings, forwards) as forwarding:
        local = {endpoint.port_key: forwarding.local[(name, endpoint.container_port)] for name, endpoint in endpoints}
        reached = settings.model_copy(update={"ports": settings.ports | local})
        yield Target("kubernetes", reached, partial(kube_gc, settings), admin=deployed.admin)


@pytest.fixture(scope="module")
def auth_stack(target: Target, deployed: Deployed) -> Iterator[AuthStack]:
    """The deployed stack has logins and MLFLOW_PUBLIC_HOSTS already: nothing to switch; the experiments
    the tests made are purged at the end."""
    from mlflow.tracking import MlflowClient

    assert target.admin is not None
    stack = AuthStack(Project(root=ROOT, env_file=deployed.project.env_file, settings=target.settings), target.admin)
    yield stack
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_USERNAME", target.admin[0])
        patch.setenv("MLFLOW_TRACKING_PASSWORD", target.admin[1])
        client = MlflowClient(tracking_uri=target.settings.mlflow_url)
        for experiment_id in stack.experiments:
            purge_experiment(client, experiment_id, target.collect)


def dotenv(path: Path) -> dict[str, str]:
    return {key: value or "" for key, value in dotenv_values(path).items()}
