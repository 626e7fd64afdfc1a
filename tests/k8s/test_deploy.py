"""`invoke deploy` to Kubernetes, live: every pod ready, MLflow through the Service, data kept across undeploy."""

from __future__ import annotations

import json
import os
import uuid

import requests

from tests.conftest import ROOT
from tests.k8s.conftest import kubectl
from tests.swarm.conftest import Deployed, invoke
from trackstack.targets.kubernetes import render as kube


def pods(namespace: str) -> list[dict[str, object]]:
    items: list[dict[str, object]] = json.loads(kubectl("-n", namespace, "get", "pods", "-o", "json").stdout)["items"]
    return items


def test_every_pod_is_ready_and_status_shows_each_workload(deployed: Deployed) -> None:
    namespace = kube.namespace(deployed.settings)
    running = [p for p in pods(namespace) if p["status"]["phase"] == "Running"]  # type: ignore[index]
    ready = {p["metadata"]["name"]: all(c["ready"] for c in p["status"]["containerStatuses"])  # type: ignore[index]
             for p in running}  # fmt: skip
    assert len(ready) == 3 + deployed.settings.mlflow_replicas, ready
    assert all(ready.values()), ready
    status = invoke("status", env_file=deployed.project.env_file)
    assert status.returncode == 0, status.stderr
    rows = {line.split()[0]: line.split()[1] for line in status.stdout.splitlines()[1:] if line.strip()}
    assert rows == {"statefulset/postgres": "1/1", "statefulset/minio": "1/1", "statefulset/pgadmin": "1/1",
                    "deployment/mlflow": "2/2"}, status.stdout  # fmt: skip


def test_mlflow_and_postgres_run_on_a_read_only_root_and_write_where_they_must(deployed: Deployed) -> None:
    """Ready with a read-only root (the test above), and a write outside their emptyDirs is refused."""
    namespace = kube.namespace(deployed.settings)
    mlflow = next(str(p["metadata"]["name"]) for p in pods(namespace)  # type: ignore[index]
                  if p["metadata"]["labels"].get("app.kubernetes.io/name") == "mlflow")  # type: ignore[index]  # fmt: skip
    for pod, path in ((mlflow, "/home/mlflow/probe"), (mlflow, "/usr/local/probe"), ("postgres-0", "/probe")):
        write = kubectl("-n", namespace, "exec", pod, "--", "python3" if pod == mlflow else "touch",
                        *(["-c", f"open({path!r}, 'w')"] if pod == mlflow else [path]), check=False)  # fmt: skip
        if path.startswith("/home/"):
            assert write.returncode == 0, write.stderr  # its emptyDir
        else:
            assert write.returncode != 0, (pod, path)
            assert "Read-only file system" in write.stderr, (pod, write.stderr)


def test_mlflow_answers_through_the_service_and_asks_for_a_login(deployed: Deployed) -> None:
    assert requests.get(f"{deployed.url}/health", timeout=10).status_code == 200
    experiments = f"{deployed.url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(experiments, timeout=10).status_code == 401
    assert requests.get(experiments, auth=deployed.admin, timeout=10).status_code == 200


def test_mlflow_runs_with_its_own_s3_user_never_the_root_keys(deployed: Deployed) -> None:
    """MLflow's pods name its bucket-scoped user and read its key, never the root password's; the artifact
    round trips of this suite (test_clients, the undeploy test) go through that user."""
    settings = deployed.settings
    found = json.loads(kubectl("-n", kube.namespace(settings), "get", "deployment", "mlflow", "-o", "json").stdout)
    spec = found["spec"]["template"]["spec"]
    container = next(c for c in spec["containers"] if c["name"] == "mlflow")
    env = {item["name"]: item.get("value", "") for item in container["env"]}
    assert env["AWS_ACCESS_KEY_ID"] == settings.mlflow_s3_access_key != settings.minio_root_user
    assert env["AWS_SECRET_ACCESS_KEY_FILE"] == "/run/secrets/mlflow_s3_secret_key"
    keys = {
        item["key"] for volume in spec["volumes"] if "secret" in volume for item in volume["secret"].get("items", [])
    }
    assert "mlflow_s3_secret_key" in keys
    assert not {"minio_root_password", "postgres_password"} & keys


def test_pgadmin_has_the_server_registered_with_its_password_command(deployed: Deployed) -> None:
    namespace = kube.namespace(deployed.settings)
    servers = kubectl("-n", namespace, "exec", "pgadmin-0", "--", "cat", "/trackstack/servers.json").stdout
    assert json.loads(servers)["Servers"]["1"]["Host"] == "postgres"
    # The password command pgAdmin runs gives the password that Postgres accepts.
    command = json.loads(servers)["Servers"]["1"]["PasswordExecCommand"].split()
    password = kubectl("-n", namespace, "exec", "pgadmin-0", "--", *command).stdout
    assert password == deployed.settings.postgres_password.get_secret_value()


def test_no_secret_is_in_a_generated_file(deployed: Deployed) -> None:
    for name in (kube.MANIFEST_FILE, "Dockerfile.mlflow"):
        text = (ROOT / name).read_text(encoding="utf-8")
        assert not [s for s in deployed.settings.secret_values() if s in text], name


def test_undeploy_and_deploy_again_keep_the_runs_and_artifacts(deployed: Deployed) -> None:
    from mlflow.tracking import MlflowClient

    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = deployed.admin
    client = MlflowClient(tracking_uri=deployed.url)
    experiment = client.create_experiment(f"k8s-{uuid.uuid4().hex[:8]}")
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "loss", 0.25)
    payload = os.urandom(300_000)
    artifact = ROOT / f".k8s-artifact-{uuid.uuid4().hex[:8]}.bin"
    artifact.write_bytes(payload)
    try:
        client.log_artifact(run.info.run_id, str(artifact))
    finally:
        artifact.unlink()
    namespace = kube.namespace(deployed.settings)

    down = invoke("undeploy", env_file=deployed.project.env_file)
    assert down.returncode == 0, down.stderr
    claims = json.loads(kubectl("-n", namespace, "get", "pvc", "-o", "json").stdout)["items"]
    assert {c["metadata"]["name"] for c in claims} == {"postgres-data-postgres-0", "minio-data-minio-0",
                                                       "pgadmin-data-pgadmin-0"}  # fmt: skip
    assert [p for p in pods(namespace) if p["status"]["phase"] != "Succeeded"] == []  # type: ignore[index]

    up = invoke("deploy", env_file=deployed.project.env_file)
    assert up.returncode == 0, up.stdout + up.stderr
    assert "prepared for this image" in up.stdout  # the image's Job ran once, in the first deploy
    assert client.get_metric_history(run.info.run_id, "loss")[0].value == 0.25
    downloaded = client.download_artifacts(run.info.run_id, artifact.name, str(ROOT / ".k8s-download"))
    with open(downloaded, "rb") as stream:
        assert stream.read() == payload
