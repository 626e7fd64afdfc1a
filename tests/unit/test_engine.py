from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from trackstack.engine import (
    DockerError,
    DockerProbe,
    _server_api,
    check_docker,
    describe,
    docker_env,
    docker_problem,
    parse_ps,
)
from trackstack.targets.compose.seed import pgadmin_storage_dir

ROW = {"Service": "mlflow", "Name": "trackstack-mlflow-1", "State": "running", "Health": "starting", "ExitCode": 0}


def test_parse_ps_reads_one_object_per_line() -> None:
    other = ROW | {"Service": "postgres", "Name": "trackstack-postgres-1", "Health": "healthy"}
    states = parse_ps(json.dumps(ROW) + "\n" + json.dumps(other) + "\n")
    assert [(s.service, s.ready) for s in states] == [("mlflow", False), ("postgres", True)]


def test_parse_ps_reads_a_json_list() -> None:
    (state,) = parse_ps(json.dumps([ROW | {"Health": "", "State": "exited", "ExitCode": 3}]))
    assert (state.state, state.exit_code, state.ready) == ("exited", 3, False)


def test_parse_ps_of_an_absent_stack() -> None:
    assert parse_ps("") == []


@pytest.mark.parametrize(
    ("output", "api"),
    [
        ('{"Server": {"ApiVersion": "1.41"}}', (1, 41)),
        ('{"Server": {"ApiVersion": "1.47"}}', (1, 47)),
        ('{"Client": {}, "Server": null}', None),
        ("", None),
    ],
)
def test_server_api(output: str, api: tuple[int, int] | None) -> None:
    assert _server_api(output) == api


def test_docker_env_drops_shell_overrides_of_env_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTGRES_PASSWORD", "from-the-shell")
    monkeypatch.setenv("HOME", "/root")
    env = docker_env()
    assert "POSTGRES_PASSWORD" not in env
    assert env["HOME"] == "/root"


@pytest.mark.parametrize(
    ("email", "folder"),
    [
        ("admin@example.com", "/var/lib/pgadmin/storage/admin_example.com"),
        ("1st@example.com", "/var/lib/pgadmin/storage/pga_user_1st_example.com"),
    ],
)
def test_pgadmin_storage_dir(email: str, folder: str) -> None:
    assert pgadmin_storage_dir(email) == folder


@pytest.mark.parametrize(
    ("probe", "words"),
    [
        (DockerProbe(cli=False), ["not installed", "install Docker Engine"]),
        (DockerProbe(cli=False, compose_v1=True), ["not installed", "docker-compose v1"]),
        (DockerProbe(cli=True, server_error="Cannot connect"), ["daemon is not reachable", "Cannot connect"]),
        (DockerProbe(cli=True, server_api=(1, 41)), ["Compose v2", "docker-compose-plugin"]),
        (DockerProbe(cli=True, server_api=(1, 41), compose_v1=True), ["Compose v2", "Only the old docker-compose v1"]),
    ],
)
def test_each_docker_problem_has_its_own_message_and_fix(probe: DockerProbe, words: list[str]) -> None:
    problem = docker_problem(probe)
    assert problem is not None
    assert "Fix:" in problem
    for word in words:
        assert word in problem


def test_a_usable_docker_has_no_problem() -> None:
    assert docker_problem(DockerProbe(cli=True, server_api=(1, 41), compose_version="2.26.1")) is None


def test_docker_missing_from_path_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a real PATH without docker on it
    with pytest.raises(DockerError, match="Docker is not installed"):
        check_docker()


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI")
def test_unreachable_daemon_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-daemon.sock")  # the real CLI, no daemon there
    with pytest.raises(DockerError, match="daemon is not reachable"):
        check_docker()


def test_parse_ps_reads_the_config_hash_and_image_labels() -> None:
    labels = "com.docker.compose.project=ts,com.docker.compose.config-hash=abc123,com.docker.compose.image=sha256:ff"
    (state,) = parse_ps(json.dumps(ROW | {"Labels": labels}))
    assert (state.config_hash, state.image_id) == ("abc123", "sha256:ff")


@pytest.mark.parametrize(
    ("args", "shown"),
    [
        (
            [
                "docker",
                "compose",
                "--project-directory",
                "/p",
                "-f",
                "/p/c.yaml",
                "-p",
                "ts",
                "--env-file",
                "/p/.env",
                "exec",
                "-T",
                "postgres",
                "pg_dump",
            ],
            "docker compose exec -T postgres pg_dump",
        ),
        (["docker", "image", "inspect", "x"], "docker image inspect x"),
    ],
)
def test_failed_commands_are_named_by_their_subcommand(args: list[str], shown: str) -> None:
    assert describe(args) == shown
