from __future__ import annotations

import json

import pytest

from trackstack.engine import _server_api, docker_env, parse_ps
from trackstack.seed import pgadmin_storage_dir

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
