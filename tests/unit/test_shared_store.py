"""ARTIFACT_STORE=seaweedfs on Docker Swarm and Kubernetes: the store's entry of the service table in
the same templates as MinIO's, its credentials from the secrets, never in a file."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
import yaml

from trackstack.services import SEAWEEDFS
from trackstack.settings import Settings
from trackstack.shared_server import secret_variables_entrypoint, store_environment
from trackstack.targets.kubernetes import render as kube
from trackstack.targets.swarm import render as swarm
from trackstack.validation import validate

IMAGE = "registry.school.example/trackstack-mlflow:3.18.0-0123456789ab"
SHARED = {
    "MLFLOW_AUTH": "true",
    "MLFLOW_PUBLIC_HOSTS": "mlflow.school.example",
    "MLFLOW_IMAGE_REPOSITORY": "registry.school.example/trackstack-mlflow",
    "ARTIFACT_STORE": "seaweedfs",
}


@pytest.fixture
def seaweedfs(values: dict[str, str]) -> Settings:
    return validate(values | SHARED)


def swarm_store(settings: Settings) -> dict[str, Any]:
    files = swarm.render_swarm(settings, image=IMAGE, mlflow_replicas=2)
    stack: dict[str, Any] = yaml.safe_load(files[swarm.STACK_FILE])
    return stack


def kube_documents(settings: Settings) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(kube.manifest_file(kube.render_kube(settings, IMAGE))) if doc]


def test_swarm_runs_the_table_entry_with_its_volume_and_healthcheck(seaweedfs: Settings) -> None:
    stack = swarm_store(seaweedfs)
    store = stack["services"]["minio"]
    assert store["image"] == "chrislusf/seaweedfs:4.53"
    assert store["command"] == list(SEAWEEDFS.command)
    assert store["volumes"] == ["seaweedfs-data:/data"]
    assert "seaweedfs-data" in stack["volumes"]
    assert "minio-data" not in stack["volumes"]
    assert store["healthcheck"]["test"] == ["CMD", "curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8333/healthz"]
    assert store["deploy"]["placement"]["constraints"] == [swarm.DATA_CONSTRAINT]
    # MLflow finds it at its own S3 port under the stack's S3 host name.
    assert stack["services"]["mlflow"]["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:8333"


def test_swarm_publishes_its_ui_and_api_on_the_minio_keys_when_shared(values: dict[str, str]) -> None:
    settings = validate(values | SHARED | {"MINIO_BIND_ADDRESS": "0.0.0.0"})
    ports = swarm_store(settings)["services"]["minio"]["ports"]
    assert [(p["target"], p["published"]) for p in ports] == [
        (12535, settings.ports["MINIO_CONSOLE_PORT"]),
        (8333, settings.ports["MINIO_API_PORT"]),
    ]


def test_swarm_gives_it_the_password_from_the_secret_file_through_a_shell(seaweedfs: Settings) -> None:
    stack = swarm_store(seaweedfs)
    store = stack["services"]["minio"]
    # The user names are no secret; the password is one secret, mounted once, read into both variables.
    assert store["environment"] == {"AWS_ACCESS_KEY_ID": "trackstack", "WEED_ADMIN_USER": "trackstack"} | {
        key: value for key, value in store["environment"].items() if key not in ("AWS_ACCESS_KEY_ID", "WEED_ADMIN_USER")
    }
    assert not [key for key in store["environment"] if key.endswith("_FILE")]
    assert store["secrets"] == [{"source": "minio_root_password", "target": "minio_root_password"}]
    # `docker stack deploy` interpolates $VARIABLES: the file escapes the shell's.
    assert store["entrypoint"][:2] == ["/bin/sh", "-c"]
    assert "$$(cat /run/secrets/minio_root_password)" in store["entrypoint"][2]
    assert store["entrypoint"][2].endswith('exec /entrypoint.sh "$$@"')
    text = swarm.render_swarm(seaweedfs, image=IMAGE, mlflow_replicas=2)[swarm.STACK_FILE]
    assert [secret for secret in seaweedfs.secret_values() if secret in text] == []


def test_the_shell_sets_each_variable_from_its_file_then_runs_the_entrypoint(tmp_path: Any) -> None:
    """The script itself, run by sh with the secret files and the entrypoint swapped for a printer."""
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "minio_root_password").write_text("s3cret with spaces $HOME")
    shell, flag, script, name = secret_variables_entrypoint(SEAWEEDFS)
    script = script.replace("/run/secrets/", f"{secrets}/").replace("exec /entrypoint.sh", "exec printenv")
    result = subprocess.run(
        [shell, flag, script, name, "AWS_SECRET_ACCESS_KEY", "WEED_ADMIN_PASSWORD"],
        capture_output=True, text=True, check=True, env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.stdout.splitlines() == ["s3cret with spaces $HOME"] * 2
    (secrets / "minio_root_password").unlink()
    missing = subprocess.run([shell, flag, script, name], capture_output=True, check=False)
    assert missing.returncode != 0


def test_kubernetes_runs_it_as_the_images_user_with_variables_from_the_secret(seaweedfs: Settings) -> None:
    sets = {doc["metadata"]["name"]: doc for doc in kube_documents(seaweedfs) if doc["kind"] == "StatefulSet"}
    pod = sets["minio"]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "chrislusf/seaweedfs:4.53"
    assert "command" not in container  # the image's entrypoint, which skips its chown as a non-root user
    assert container["args"] == list(SEAWEEDFS.command)
    assert pod["securityContext"]["runAsUser"] == 1000
    assert pod["securityContext"]["fsGroup"] == 1000
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert [p["containerPort"] for p in container["ports"]] == [12535, 8333]
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": 8333}
    assert sets["minio"]["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "seaweedfs-data"
    env = {item["name"]: item for item in container["env"]}
    for variable in ("AWS_SECRET_ACCESS_KEY", "WEED_ADMIN_PASSWORD"):
        assert env[variable]["valueFrom"] == {"secretKeyRef": {"name": kube.SECRET, "key": "minio_root_password"}}
    assert env["AWS_ACCESS_KEY_ID"]["value"] == env["WEED_ADMIN_USER"]["value"] == seaweedfs.minio_root_user
    assert [item["key"] for item in pod["volumes"][0]["secret"]["items"]] == ["minio_root_password"]
    services = {doc["metadata"]["name"]: doc for doc in kube_documents(seaweedfs) if doc["kind"] == "Service"}
    assert [p["port"] for p in services["minio"]["spec"]["ports"]] == [12535, 8333]
    policies = {doc["metadata"]["name"]: doc for doc in kube_documents(seaweedfs) if doc["kind"] == "NetworkPolicy"}
    assert policies["allow-minio"]["spec"]["ingress"][0]["ports"] == [{"port": 8333, "protocol": "TCP"}]
    text = kube.manifest_file(kube.render_kube(seaweedfs, IMAGE))
    assert [secret for secret in seaweedfs.secret_values() if secret in text] == []


def test_minio_stays_as_it_was_on_both(values: dict[str, str]) -> None:
    minio = validate(values | SHARED | {"ARTIFACT_STORE": "minio"})
    store = swarm_store(minio)["services"]["minio"]
    assert "entrypoint" not in store
    assert store["environment"] == {"MINIO_ROOT_PASSWORD_FILE": "/run/secrets/minio_root_password",
                                    "MINIO_ROOT_USER": minio.minio_root_user}  # fmt: skip
    assert store_environment(minio) == {"MINIO_ROOT_USER": minio.minio_root_user}


def test_switching_store_on_kubernetes_asks_for_an_undeploy_first(seaweedfs: Settings) -> None:
    deployed = [{"metadata": {"name": "minio"},
                 "spec": {"volumeClaimTemplates": [{"metadata": {"name": "minio-data"}}]}}]  # fmt: skip
    problems = kube.changed_stores(seaweedfs, deployed)
    assert [p.key for p in problems] == ["ARTIFACT_STORE"]
    assert "invoke undeploy" in problems[0].fix
    same = [
        {"metadata": {"name": "minio"}, "spec": {"volumeClaimTemplates": [{"metadata": {"name": "seaweedfs-data"}}]}}
    ]
    assert kube.changed_stores(seaweedfs, same) == []
