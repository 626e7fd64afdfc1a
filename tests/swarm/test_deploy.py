"""`invoke deploy` on a live swarm: replicas behind the proxy, data kept across undeploy, bad input refused."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest
import requests

from tests.swarm.conftest import Deployed, invoke, write_env
from trackstack.targets.swarm import render as swarm
from trackstack.targets.swarm import state as swarmstate


def spec_versions(project: str) -> dict[str, int]:
    """Each service of the stack and the version of its spec: a deploy that changes nothing keeps them."""
    names = list(swarmstate.services(project))
    if not names:
        return {}
    out = subprocess.run(["docker", "service", "inspect", "--format", "{{.Spec.Name}} {{.Version.Index}}", *names],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return {name: int(index) for name, index in (line.split() for line in out.splitlines())}


def test_every_service_runs_its_replicas(deployed: Deployed) -> None:
    found = swarmstate.services(deployed.project.name)
    replicas = {name.removeprefix(f"{deployed.project.name}_"): (s.running, s.desired) for name, s in found.items()}
    assert replicas == {"proxy": (1, 1), "postgres": (1, 1), "minio": (1, 1), "pgadmin": (1, 1), "mlflow": (2, 2)}
    status = invoke("status", env_file=deployed.project.env_file)
    assert status.returncode == 0, status.stderr
    assert any(line.split()[:2] == ["mlflow", "2/2"] for line in status.stdout.splitlines()), status.stdout


def test_requests_reach_every_mlflow_replica_through_the_proxy(deployed: Deployed) -> None:
    upstreams = set()
    for _ in range(20):
        response = requests.get(f"{deployed.url}/health", verify=deployed.ca, timeout=10)
        assert response.status_code == 200
        upstreams.add(response.headers["X-Trackstack-Upstream"])
    assert len(upstreams) == deployed.settings.mlflow_replicas, upstreams


def test_mlflow_asks_for_a_login_over_tls(deployed: Deployed) -> None:
    experiments = f"{deployed.url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(experiments, verify=deployed.ca, timeout=10).status_code == 401
    # 60 s: the first login of a replica checks the password hash, slow on a busy 2-core machine.
    assert requests.get(experiments, auth=deployed.admin, verify=deployed.ca, timeout=60).status_code == 200
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{deployed.url}/health", timeout=10)  # a certificate of the proxy's own CA, not a public one


def test_the_ca_students_get_is_name_constrained_to_the_server(deployed: Deployed) -> None:
    """Whoever holds the CA's key can sign for this server's names only: critical NameConstraints."""
    from cryptography import x509

    ca = x509.load_pem_x509_certificate(Path(deployed.ca).read_bytes())
    constraints = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert constraints.critical
    permitted = {str(name.value) for name in constraints.value.permitted_subtrees or []}
    assert set(deployed.settings.public_hosts) <= {name.removesuffix("/32") for name in permitted}, permitted


def test_a_bad_env_deploys_nothing(deployed: Deployed, tmp_path: Path) -> None:
    before = spec_versions(deployed.project.name)
    bad = deployed.project.env_file.with_name(f"{deployed.project.env_file.name}.bad")
    lines = deployed.project.env_file.read_text(encoding="utf-8").splitlines()
    values = dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))
    write_env(bad, values | {"MLFLOW_REPLICAS": "0", "MLFLOW_IMAGE_REPOSITORY": ""})
    try:
        result = invoke("deploy", env_file=bad, timeout=120)
    finally:
        bad.unlink()
    assert result.returncode == 1
    assert "MLFLOW_REPLICAS" in result.stderr
    assert "MLFLOW_IMAGE_REPOSITORY" in result.stderr
    assert spec_versions(deployed.project.name) == before


def test_undeploy_and_deploy_again_keep_the_runs_and_artifacts(deployed: Deployed) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = deployed.admin
    os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"] = deployed.ca
    client = MlflowClient(tracking_uri=deployed.url)
    experiment = client.create_experiment(f"swarm-{uuid.uuid4().hex[:8]}")
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "loss", 0.25)
    with tempfile.TemporaryDirectory() as folder:
        note = Path(folder, "note.txt")
        note.write_text("kept", encoding="utf-8")
        client.log_artifact(run.info.run_id, str(note))
    client.set_terminated(run.info.run_id)

    undeploy = invoke("undeploy", env_file=deployed.project.env_file, timeout=300)
    assert undeploy.returncode == 0, undeploy.stderr
    assert swarmstate.services(deployed.project.name) == {}
    again = invoke("deploy", env_file=deployed.project.env_file)
    assert again.returncode == 0, f"{again.stdout}\n{again.stderr}"

    kept = client.get_run(run.info.run_id)
    assert kept.data.metrics == {"loss": 0.25}
    with tempfile.TemporaryDirectory() as folder:
        mlflow.set_tracking_uri(deployed.url)
        path = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="note.txt", dst_path=folder)
        assert Path(path).read_text(encoding="utf-8") == "kept"


def test_no_secret_is_in_the_service_specs(deployed: Deployed) -> None:
    names = [swarm.service_name(deployed.settings, s) for s in ("proxy", "postgres", "minio", "mlflow", "pgadmin")]
    specs = subprocess.run(["docker", "service", "inspect", *names], capture_output=True, text=True, check=True).stdout
    json.loads(specs)
    for secret in deployed.settings.secret_values():
        assert secret not in specs


def test_mlflow_runs_with_its_own_s3_user_never_the_root_keys(deployed: Deployed) -> None:
    """Its replicas' spec names MLflow's bucket-scoped user and mounts its key, not the root password; the
    artifact round trips of this suite (test_clients, the undeploy test) go through that user."""
    settings = deployed.settings
    name = swarm.service_name(settings, "mlflow")
    spec = json.loads(subprocess.run(["docker", "service", "inspect", name], capture_output=True, text=True,
                                     check=True).stdout)[0]["Spec"]["TaskTemplate"]["ContainerSpec"]  # fmt: skip
    env = dict(item.split("=", 1) for item in spec["Env"])
    assert env["AWS_ACCESS_KEY_ID"] == settings.mlflow_s3_access_key != settings.minio_root_user
    assert env["AWS_SECRET_ACCESS_KEY_FILE"] == "/run/secrets/mlflow_s3_secret_key"
    mounted = {secret["File"]["Name"] for secret in spec["Secrets"]}
    assert "mlflow_s3_secret_key" in mounted
    assert not {"minio_root_password", "postgres_password"} & mounted


def test_user_tasks_reach_the_deployed_stack(deployed: Deployed) -> None:
    env_file = deployed.project.env_file
    login = f"student-{uuid.uuid4().hex[:6]}"  # the data outlives the suite
    added = invoke("user.add", login, env_file=env_file, timeout=300)
    assert added.returncode == 0, added.stderr
    password = added.stdout.split("(shown only now): ", 1)[1].split()[0]
    experiments = f"{deployed.url}/api/2.0/mlflow/experiments/search?max_results=1"
    student = (login, password)
    assert requests.get(experiments, auth=student, verify=deployed.ca, timeout=60).status_code == 200
    listed = invoke("user.list", env_file=env_file, timeout=300)
    assert listed.returncode == 0, listed.stderr
    assert {login, "admin  (admin)"} <= set(listed.stdout.splitlines())
    removed = invoke("user.remove", login, env_file=env_file, timeout=300)
    assert removed.returncode == 0, removed.stderr
    assert requests.get(experiments, auth=student, verify=deployed.ca, timeout=60).status_code == 401
