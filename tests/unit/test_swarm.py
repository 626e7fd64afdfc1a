"""Docker Swarm rendering (swarm.py): the stack file, the Caddyfile, secret names, the prepare job."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from trackstack import shared_server
from trackstack.problems import SettingsError
from trackstack.services import SWARM_SECRET_KEYS, SWARM_SERVICES
from trackstack.settings import Settings
from trackstack.targets.swarm import render as swarm
from trackstack.validation import validate

IMAGE = "registry.school.example:5000/trackstack-mlflow:3.17.2-0123456789ab"
SHARED = {
    "MLFLOW_AUTH": "true",
    "MLFLOW_PUBLIC_HOSTS": "mlflow.school.example,10.0.0.5",
    "MLFLOW_IMAGE_REPOSITORY": "registry.school.example:5000/trackstack-mlflow",
}


@pytest.fixture
def shared(values: dict[str, str]) -> Settings:
    return validate(values | SHARED)


def files_of(settings: Settings, replicas: int = 3) -> dict[str, str]:
    return swarm.render_swarm(settings, image=IMAGE, mlflow_replicas=replicas)


def stack_of(settings: Settings, replicas: int = 3) -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load(files_of(settings, replicas)[swarm.STACK_FILE])
    return parsed


def test_a_stack_file_docker_20_10_reads(shared: Settings) -> None:
    stack = stack_of(shared)
    assert stack["version"] == "3.9"  # Docker 20.10's `stack deploy` needs it
    assert set(stack["services"]) == {service.name for service in SWARM_SERVICES}


def test_no_secret_reaches_a_generated_file_or_the_prepare_job(shared: Settings) -> None:
    texts = [*files_of(shared).values(), " ".join(swarm.prepare_job_args(shared, image=IMAGE))]
    for text in texts:
        for secret in shared.secret_values():
            assert secret not in text


def test_secrets_are_external_docker_secrets_read_through_file_variables(shared: Settings) -> None:
    stack = stack_of(shared)
    assert set(stack["secrets"]) == {key.lower() for key in SWARM_SECRET_KEYS}
    assert all(secret["external"] for secret in stack["secrets"].values())
    environments = {name: service.get("environment", {}) for name, service in stack["services"].items()}
    assert environments["postgres"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert environments["minio"]["MINIO_ROOT_PASSWORD_FILE"] == "/run/secrets/minio_root_password"
    assert environments["pgadmin"]["PGADMIN_DEFAULT_PASSWORD_FILE"] == "/run/secrets/pgadmin_default_password"
    # MLflow's own role's password, never the superuser's (privileges.py).
    assert environments["mlflow"]["PGPASSWORD_FILE"] == "/run/secrets/mlflow_db_password"
    # MLflow's own S3 user, never the root keys.
    assert environments["mlflow"]["AWS_SECRET_ACCESS_KEY_FILE"] == "/run/secrets/mlflow_s3_secret_key"
    assert environments["mlflow"]["AWS_ACCESS_KEY_ID"] == shared.mlflow_s3_access_key
    assert "minio_root_password" not in {secret["source"] for secret in stack["services"]["mlflow"]["secrets"]}
    for name, service in stack["services"].items():
        mounted = {secret["source"] for secret in service.get("secrets", [])}
        named = {value.removeprefix("/run/secrets/") for value in environments[name].values()} - set(
            environments[name].values()
        )
        assert named <= mounted, name
        assert not any(key.endswith(("PASSWORD", "SECRET_KEY")) for key in environments[name]), name


def test_a_changed_password_renames_only_its_secret(shared: Settings, values: dict[str, str]) -> None:
    before = shared_server.secret_names(shared)
    after = shared_server.secret_names(validate(values | SHARED | {"MINIO_ROOT_PASSWORD": "another-Strong-Secret-9"}))
    changed = {target for target in before if before[target] != after[target]}
    assert changed == {"minio_root_password"}
    assert before == shared_server.secret_names(shared)  # the same value, the same name: nothing rolls
    assert all(len(name) <= 64 for name in before.values())


def test_every_service_is_found_by_dns_with_a_healthcheck_and_host_mode_ports(shared: Settings) -> None:
    for name, service in stack_of(shared)["services"].items():
        assert service["deploy"]["endpoint_mode"] == "dnsrr", name
        assert service["healthcheck"]["test"][0] == "CMD", name
        assert service["networks"] == ["backend"], name
        for port in service.get("ports", []):
            assert port["mode"] == "host", name
    assert stack_of(shared)["networks"]["backend"]["driver"] == "overlay"


def test_data_services_sit_on_the_data_node_with_their_volumes(shared: Settings) -> None:
    services = stack_of(shared)["services"]
    for name in ("postgres", "minio", "pgadmin", "proxy"):
        assert services[name]["deploy"]["placement"]["constraints"] == ["node.labels.trackstack.data == true"]
        assert services[name]["deploy"]["replicas"] == 1
        assert services[name]["volumes"]
    assert "placement" not in services["mlflow"]["deploy"]
    assert "volumes" not in services["mlflow"]


def test_mlflow_runs_its_replicas_behind_the_proxy_and_updates_start_first(shared: Settings) -> None:
    services = stack_of(shared, replicas=3)["services"]
    mlflow = services["mlflow"]
    assert mlflow["image"] == IMAGE
    assert mlflow["deploy"]["replicas"] == 3
    assert mlflow["deploy"]["update_config"]["order"] == "start-first"
    assert "ports" not in mlflow
    assert mlflow["environment"]["TRACKSTACK_AUTH_PREPARED"] == "true"
    assert "--app-name=basic-auth" in mlflow["command"]
    assert services["proxy"]["ports"] == [{"target": 443, "published": 5001, "protocol": "tcp", "mode": "host"}]
    assert stack_of(shared, replicas=0)["services"]["mlflow"]["deploy"]["replicas"] == 0


def test_the_proxy_spreads_requests_over_the_mlflow_tasks_and_terminates_tls(shared: Settings) -> None:
    caddyfile = files_of(shared)[swarm.CADDYFILE]
    assert "https://mlflow.school.example, https://localhost, https://10.0.0.5, https://127.0.0.1 {" in caddyfile
    assert "tls /run/secrets/tls_cert /run/secrets/tls_key" in caddyfile
    assert "tls internal" not in caddyfile
    assert "dynamic a {" in caddyfile
    assert "name tasks.trackstack_mlflow" in caddyfile
    assert "default_sni mlflow.school.example" in caddyfile
    assert swarm.mlflow_url(shared) == "https://mlflow.school.example:5001"


def test_other_services_are_published_only_when_their_bind_address_shares_them(
    shared: Settings, values: dict[str, str]
) -> None:
    assert {name for name, service in stack_of(shared)["services"].items() if "ports" in service} == {"proxy"}
    opened = validate(values | SHARED | {"PGADMIN_BIND_ADDRESS": "0.0.0.0"})
    assert {name for name, service in stack_of(opened)["services"].items() if "ports" in service} == {
        "proxy",
        "pgadmin",
    }


def test_configs_are_named_by_their_content(shared: Settings, values: dict[str, str]) -> None:
    configs = stack_of(shared)["configs"]
    assert configs["caddyfile"]["file"] == "./Caddyfile"
    other = stack_of(validate(values | SHARED | {"MLFLOW_PUBLIC_HOSTS": "other.school.example"}))["configs"]
    assert other["caddyfile"]["name"] != configs["caddyfile"]["name"]
    assert other["pgadmin-servers"]["name"] == configs["pgadmin-servers"]["name"]


def test_pgadmin_reads_the_postgres_password_from_its_secret_file(shared: Settings) -> None:
    entry = json.loads(files_of(shared)[swarm.SWARM_SERVERS_FILE])["Servers"]["1"]
    assert entry["PasswordExecCommand"] == "cat /run/secrets/postgres_password"


def test_the_prepare_job_runs_once_with_mlflows_secrets_on_the_stack_network(shared: Settings) -> None:
    args = swarm.prepare_job_args(shared, image=IMAGE)
    assert args[:3] == ["docker", "service", "create"]
    assert args[args.index("--mode") + 1] == "replicated-job"
    assert args[args.index("--network") + 1] == "trackstack_backend"
    assert "com.docker.stack.namespace=trackstack" in args  # `docker stack rm` removes a leftover
    secrets = [args[i + 1] for i, arg in enumerate(args) if arg == "--secret"]
    # MLflow's four, the superuser's password and the store's root key, which only this job uses (MLflow's
    # role and databases, the bucket); as their own variables, never MLflow's.
    assert len(secrets) == 6
    assert any(secret.endswith("target=postgres_password") for secret in secrets)
    assert any(secret.endswith("target=minio_root_password") for secret in secrets)
    assert "TRACKSTACK_STORE_ROOT_PASSWORD_FILE=/run/secrets/minio_root_password" in args
    assert "AWS_SECRET_ACCESS_KEY_FILE=/run/secrets/mlflow_s3_secret_key" in args
    assert f"AWS_ACCESS_KEY_ID={shared.mlflow_s3_access_key}" in args
    assert all(secret.startswith("source=trackstack_") for secret in secrets)
    assert args[args.index(IMAGE) + 1 : args.index(IMAGE) + 3] == ["python", "-c"]
    assert args[-1] == "true"  # the auth step ends the job instead of starting a server


def test_a_deploy_needs_a_repository_logins_and_a_public_name(values: dict[str, str]) -> None:
    problems = swarm.deploy_problems(values)
    assert {problem.key for problem in problems} == {"MLFLOW_IMAGE_REPOSITORY", "MLFLOW_AUTH", "MLFLOW_PUBLIC_HOSTS"}
    long_name = values | SHARED | {"COMPOSE_PROJECT_NAME": "a-very-long-project-name"}
    assert [problem.key for problem in swarm.deploy_problems(long_name)] == ["COMPOSE_PROJECT_NAME"]
    assert swarm.deploy_problems(values | SHARED | {"MLFLOW_AUTH": "maybe"}) == []  # the field check reports it


def test_deploy_problems_come_with_every_other_problem(values: dict[str, str], tmp_path: Path) -> None:
    from invoke.config import Config
    from invoke.context import Context

    from trackstack.tasks import _project
    from trackstack.validation import ENFORCED

    env = tmp_path / ".env"
    env.write_text("".join(f"{k}={v}\n" for k, v in (values | {"MLFLOW_REPLICAS": "0"}).items()), encoding="utf-8")
    context = Context(Config(overrides={"trackstack": {"root": str(tmp_path)}}))
    with pytest.raises(SettingsError) as error:
        _project(context, ENFORCED, also=swarm.deploy_problems)
    said = str(error.value)
    assert all(key in said for key in ("MLFLOW_REPLICAS", "MLFLOW_IMAGE_REPOSITORY", "MLFLOW_AUTH"))


@pytest.mark.parametrize("repository", ["Registry/UPPER", "repo:tag", "host:port/x", "x@sha256:00"])
def test_a_repository_with_a_tag_or_bad_characters_is_refused(values: dict[str, str], repository: str) -> None:
    with pytest.raises(SettingsError) as error:
        validate(values | {"MLFLOW_IMAGE_REPOSITORY": repository})
    assert "MLFLOW_IMAGE_REPOSITORY" in str(error.value)


def test_replicas_are_bounded(values: dict[str, str]) -> None:
    with pytest.raises(SettingsError) as error:
        validate(values | {"MLFLOW_REPLICAS": "0"})
    assert "MLFLOW_REPLICAS" in str(error.value)
    assert validate(values).mlflow_replicas == 2


def test_docker_stack_config_accepts_the_file(shared: Settings, tmp_path: Path) -> None:
    if shutil.which("docker") is None:
        pytest.skip("no docker CLI")
    for name, text in files_of(shared).items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    result = subprocess.run(
        ["docker", "stack", "config", "--compose-file", str(tmp_path / swarm.STACK_FILE)],
        capture_output=True,
        text=True,
        check=False,
    )
    if "unknown command" in result.stderr or "is not a docker command" in result.stderr:
        pytest.skip("this docker CLI has no `stack config`")
    assert result.returncode == 0, result.stderr
