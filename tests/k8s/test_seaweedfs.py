"""ARTIFACT_STORE=seaweedfs deployed to Kubernetes: a project of its own beside the suite's (its own
namespace and NodePort, one MLflow replica), an artifact logged and read back with MLflow's client at
its defaults, and the SeaweedFS pod hardened as every pod is (the namespace enforces "restricted").

Kubernetes, not Swarm: the bed loads the pinned image into the node (no registry push), the suite's
MLflow image is already built and loaded, and the whole deploy takes one `invoke deploy`."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.k8s.conftest import NODE_PORT, PROJECT, clean_namespace, k8s_values, kubectl, load_images, project_of
from tests.swarm.conftest import Deployed, invoke, write_env
from trackstack.targets.kubernetes import render as kube

SEAWEEDFS_PROJECT = f"{PROJECT}sw"


@pytest.fixture(scope="module")
def seaweedfs(cluster: None) -> Iterator[Deployed]:
    env_file = ROOT / f".env.{SEAWEEDFS_PROJECT}"
    write_env(env_file, k8s_values(SEAWEEDFS_PROJECT, NODE_PORT + 1) | {
        "ARTIFACT_STORE": "seaweedfs", "MLFLOW_REPLICAS": "1",
        "POSTGRES_PORT": "35433", "MINIO_API_PORT": "39010", "MINIO_CONSOLE_PORT": "39011", "PGADMIN_PORT": "35052",
    })  # fmt: skip
    project = project_of(env_file)
    clean_namespace(project.settings)
    load_images(project)
    result = invoke("deploy", env_file=env_file)
    if result.returncode != 0:
        pytest.fail(f"invoke deploy failed:\n{result.stdout}\n{result.stderr}", pytrace=False)
    settings = project.settings
    admin = (settings.mlflow_admin_user, settings.mlflow_admin_password.get_secret_value())
    yield Deployed(project, f"http://127.0.0.1:{NODE_PORT + 1}", admin, ca="")
    if not os.environ.get("TRACKSTACK_TEST_K8S_KEEP"):
        invoke("undeploy", env_file=env_file)
        kubectl("delete", "namespace", kube.namespace(settings), "--ignore-not-found", "--wait=false")


def test_an_artifact_round_trips_through_mlflow_into_seaweedfs(seaweedfs: Deployed, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = seaweedfs.admin
    client = MlflowClient(tracking_uri=seaweedfs.url)
    run = client.create_run(client.create_experiment(f"seaweedfs-{uuid.uuid4().hex[:8]}"))
    payload = os.urandom(3 * 1024 * 1024)
    (tmp_path / "model.bin").write_bytes(payload)
    (tmp_path / "notes.txt").write_text("seaweedfs on kubernetes\n", encoding="utf-8")
    client.log_artifact(run.info.run_id, str(tmp_path / "model.bin"))
    client.log_artifact(run.info.run_id, str(tmp_path / "notes.txt"), artifact_path="docs")

    assert sorted(f.path for f in client.list_artifacts(run.info.run_id)) == ["docs", "model.bin"]
    out = Path(client.download_artifacts(run.info.run_id, "", str(tmp_path / "out")))
    assert (out / "model.bin").read_bytes() == payload
    assert (out / "docs" / "notes.txt").read_text(encoding="utf-8") == "seaweedfs on kubernetes\n"

    # The bytes are in SeaweedFS's bucket (read through its filer inside the pod), not only in MLflow's answer.
    namespace = kube.namespace(seaweedfs.settings)
    key = run.info.artifact_uri.removeprefix("mlflow-artifacts:/")
    url = f"http://127.0.0.1:8888/buckets/{seaweedfs.settings.mlflow_bucket}/{key}/model.bin"
    size = kubectl("-n", namespace, "exec", "minio-0", "-c", "minio", "--",
                   "curl", "-fsS", "-o", "/dev/null", "-w", "%{size_download}", url)  # fmt: skip
    assert size.stdout == str(len(payload))

    pod = kubectl("-n", namespace, "get", "pod", "minio-0", "-o", "jsonpath={.spec.securityContext.runAsUser}")
    assert pod.stdout == "1000"
    image = kubectl("-n", namespace, "get", "pod", "minio-0", "-o", "jsonpath={.spec.containers[0].image}")
    assert image.stdout == seaweedfs.settings.seaweedfs_image
