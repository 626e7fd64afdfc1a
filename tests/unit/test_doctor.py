from __future__ import annotations

from pathlib import Path

import pytest

from trackstack.doctor import Check, check_artifact_downloads, check_docker, check_env, check_mlflow_client, report
from trackstack.engine import DockerProbe


def test_a_bad_env_is_a_blocker_naming_the_key(tmp_path: Path, values: dict[str, str]) -> None:
    values["MLFLOW_PORT"] = "abc"
    env = tmp_path / ".env"
    env.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    check, project = check_env(env)
    assert project is None
    assert check.blocking
    assert "MLFLOW_PORT='abc'" in check.detail


def test_a_good_env_passes(tmp_path: Path, values: dict[str, str]) -> None:
    env = tmp_path / ".env"
    env.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    check, project = check_env(env)
    assert check.level == "ok"
    assert project is not None


def test_docker_checks_stop_at_the_first_missing_piece() -> None:
    names = [c.name for c in check_docker(DockerProbe(cli=False))]
    assert names == ["docker CLI"]
    checks = check_docker(DockerProbe(cli=True, server_error="permission denied"))
    assert [(c.name, c.level) for c in checks] == [("docker CLI", "ok"), ("docker daemon", "fail")]
    assert "permission denied" in checks[1].fix


def test_an_old_engine_is_a_warning_not_a_blocker() -> None:
    probe = DockerProbe(cli=True, server_api=(1, 41), server_version="20.10.24", compose_version="2.26.1")
    checks = check_docker(probe)
    assert not any(c.blocking for c in checks)
    assert [c.level for c in checks if c.name == "engine features"] == ["warn"]


def test_report_shows_each_fix() -> None:
    text = report([Check("ports", "fail", "port 5432 is in use by postgres (pid 9)", "stop that program")])
    assert text.splitlines() == [
        "[FAIL] ports: port 5432 is in use by postgres (pid 9)",
        "       fix: stop that program",
    ]


def test_a_newer_mlflow_client_is_a_warning_with_both_routes() -> None:
    check = check_mlflow_client("3.8.1", "3.17.2")
    assert check is not None
    assert (check.level, check.blocking) == ("warn", False)
    assert "3.17.2" in check.detail
    assert "3.8.1" in check.detail
    assert "MLFLOW_VERSION=3.17.2" in check.fix
    assert "mlflow-skinny==3.8.1" in check.fix


@pytest.mark.parametrize("client", ["3.8.0", "3.8.9", "3.7.1", "2.22.0"])
def test_a_client_as_old_as_the_server_is_fine(client: str) -> None:
    check = check_mlflow_client("3.8.1", client)
    assert check is not None
    assert check.level == "ok"


def test_no_local_client_no_check() -> None:
    assert check_mlflow_client("3.8.1", None) is None


@pytest.mark.parametrize(("server", "level"), [("3.8.1", "ok"), ("3.14.0", "ok"), ("3.15.0", "warn"),
                                               ("3.17.2", "warn"), ("3.18.0", "ok"), ("4.0.0", "ok")])  # fmt: skip
def test_servers_that_presign_at_the_in_stack_address_are_a_warning_naming_the_way_out(server: str, level: str) -> None:
    check = check_artifact_downloads(server)
    assert check.level == level
    if level == "warn":
        assert "http://minio:9000" in check.detail
        assert "MLFLOW_VERSION=3.18.0" in check.fix
        assert "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD=false" in check.fix
