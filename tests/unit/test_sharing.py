"""LAN mode and MLflow logins: what `.env` allows, and what reaches compose.yaml."""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from tests.unit.test_render import compose_of
from trackstack.engine import EngineFeatures
from trackstack.problems import SettingsError
from trackstack.project import Project
from trackstack.targets.compose.render import render_all
from trackstack.targets.compose.views import print_urls
from trackstack.validation import validate

AUTH = {"MLFLOW_AUTH": "true", "MLFLOW_PUBLIC_HOSTS": "mlflow.school.example, 192.168.1.20"}


def test_mlflow_beyond_loopback_without_logins_is_refused_naming_the_keys(values: dict[str, str]) -> None:
    values["BIND_ADDRESS"] = "0.0.0.0"
    with pytest.raises(SettingsError) as caught:
        validate(values)
    message = str(caught.value)
    for key in ("BIND_ADDRESS", "MLFLOW_AUTH=true", "MLFLOW_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY"):
        assert key in message


# (key, value, the reason given) for MLFLOW_AUTH=true
AUTH_PROBLEMS = [
    ("MLFLOW_ADMIN_PASSWORD", "", "at least 12 characters"),
    ("MLFLOW_ADMIN_PASSWORD", "short-pass", "at least 12 characters"),
    ("MLFLOW_FLASK_SERVER_SECRET_KEY", "too-short", "at least 16 characters"),
    ("MLFLOW_ADMIN_PASSWORD", "change-me-mlflow-admin", "weak"),
    ("MLFLOW_ADMIN_PASSWORD", "two\nlines-of-password", "control character"),
    ("MLFLOW_DEFAULT_PERMISSION", "WRITE", "not a known value"),
    ("MLFLOW_PUBLIC_HOSTS", "http://mlflow.example", "not a host name"),
    ("MLFLOW_ADMIN_USER", "ad min", "login name"),
    ("MINIO_BIND_ADDRESS", "everywhere", "IPv4"),
]


@pytest.mark.parametrize(("key", "bad", "reason"), AUTH_PROBLEMS)
def test_auth_settings_are_checked_and_secrets_masked(values: dict[str, str], key: str, bad: str, reason: str) -> None:
    values |= AUTH | {key: bad}
    with pytest.raises(SettingsError) as caught:
        validate(values)
    problems = [p for p in caught.value.problems if p.key == key]
    assert len(problems) == 1, caught.value
    assert reason in problems[0].reason
    if "PASSWORD" in key and bad:
        assert bad not in str(caught.value)


def test_an_older_env_without_the_sharing_keys_is_valid(values: dict[str, str]) -> None:
    for key in [k for k in values if k.startswith("MLFLOW_") and k not in ("MLFLOW_BUCKET", "MLFLOW_VERSION",
                                                                            "MLFLOW_WORKERS", "MLFLOW_PORT",
                                                                            "MLFLOW_BASE_IMAGE", "MLFLOW_DB_PASSWORD",
                                                                            "MLFLOW_S3_SECRET_KEY")]:  # fmt: skip
        del values[key]
    for key in ("PGADMIN_BIND_ADDRESS", "MINIO_BIND_ADDRESS", "POSTGRES_BIND_ADDRESS"):
        del values[key]
    settings = validate(values)
    assert not settings.mlflow_auth
    assert settings.mlflow_default_permission == "READ"


def test_lan_mode_publishes_mlflow_only(values: dict[str, str]) -> None:
    values |= AUTH | {"BIND_ADDRESS": "0.0.0.0"}
    services = compose_of(validate(values))["services"]
    assert services["proxy"]["ports"] == ["0.0.0.0:5001:443"]  # HTTPS; MLflow behind it, published nowhere
    assert "ports" not in services["mlflow"]
    for name in ("postgres", "minio", "pgadmin"):
        assert all(port.startswith("127.0.0.1:") for port in services[name]["ports"]), name


@pytest.mark.parametrize("service", ["postgres", "minio", "pgadmin"])
def test_a_service_is_published_when_its_own_key_says_so(values: dict[str, str], service: str) -> None:
    values |= AUTH | {"BIND_ADDRESS": "0.0.0.0", f"{service.upper()}_BIND_ADDRESS": "0.0.0.0"}
    services = compose_of(validate(values))["services"]
    assert all(port.startswith("0.0.0.0:") for port in services[service]["ports"])
    others = {"postgres", "minio", "pgadmin"} - {service}
    assert all(port.startswith("127.0.0.1:") for name in others for port in services[name]["ports"])


def _allowed_hosts(values: dict[str, str]) -> set[str]:
    command = compose_of(validate(values))["services"]["mlflow"]["command"]
    flag = next(arg for arg in command if arg.startswith("--allowed-hosts="))
    return set(flag.removeprefix("--allowed-hosts=").split(","))


def test_public_hosts_are_allowed_with_and_without_the_port(values: dict[str, str]) -> None:
    values |= AUTH
    hosts = _allowed_hosts(values)
    assert {"mlflow.school.example", "mlflow.school.example:5001", "192.168.1.20", "192.168.1.20:5001"} <= hosts
    assert {"localhost:5001", "127.0.0.1:5001", "mlflow:5000"} <= hosts


def test_without_public_hosts_only_this_machine_and_the_stack_are_allowed(values: dict[str, str]) -> None:
    assert _allowed_hosts(values) == {"localhost:5001", "127.0.0.1:5001", "mlflow:5000", "mlflow"}


def test_auth_starts_the_basic_auth_app_with_secrets_from_env_only(values: dict[str, str]) -> None:
    values |= AUTH
    settings = validate(values)
    mlflow = compose_of(settings)["services"]["mlflow"]
    command = mlflow["command"]
    assert command[:2] == ["python", "-c"]
    assert "os.execvp(sys.argv[1], sys.argv[1:])" in command[2]
    assert command[3:5] == ["mlflow", "server"]
    assert "--app-name=basic-auth" in command
    environment = mlflow["environment"]
    assert environment["MLFLOW_ADMIN_PASSWORD"].startswith("${MLFLOW_ADMIN_PASSWORD:?")
    assert environment["MLFLOW_FLASK_SERVER_SECRET_KEY"].startswith("${MLFLOW_FLASK_SERVER_SECRET_KEY:?")
    assert environment["MLFLOW_AUTH_DB"] == "mlflow_auth"
    assert environment["MLFLOW_DEFAULT_PERMISSION"] == "READ"
    assert environment["MLFLOW_BASIC_AUTH_FAIL_CLOSED"] == "true"  # a route without its own check: 403
    for name, text in render_all(settings, EngineFeatures()).items():
        for secret in settings.secret_values():
            assert secret not in text, name
        # Compose would expand a lone '$' in the start script.
        assert "$" not in text.replace("${", ""), name


def test_without_auth_mlflow_runs_plain(values: dict[str, str]) -> None:
    mlflow = compose_of(validate(values))["services"]["mlflow"]
    assert mlflow["command"][:2] == ["mlflow", "server"]
    assert "MLFLOW_ADMIN_PASSWORD" not in mlflow["environment"]


def test_urls_name_the_admin_login_keys_with_auth(values: dict[str, str]) -> None:
    values |= AUTH
    project = Project(root=Path("."), env_file=Path(".env"), settings=validate(values))
    out = io.StringIO()
    with redirect_stdout(out):
        print_urls(project)
    mlflow_line = next(line for line in out.getvalue().splitlines() if "MLflow UI" in line)
    assert "MLFLOW_ADMIN_USER / MLFLOW_ADMIN_PASSWORD" in mlflow_line
    assert values["MLFLOW_ADMIN_PASSWORD"] not in out.getvalue()


@pytest.mark.parametrize(("server", "fix"), [(None, "invoke up"), ("deployed", "invoke deploy")])
def test_a_login_error_names_the_task_that_applies_env_to_that_server(
    values: dict[str, str], tmp_path: Path, server: str | None, fix: str
) -> None:
    from trackstack.auth import AuthError, Server, remove_user

    settings = validate(values | AUTH)
    project = Project(root=tmp_path, env_file=tmp_path / ".env", settings=settings)
    deployed = Server("https://mlflow.school.example", apply="invoke deploy") if server else None
    with pytest.raises(AuthError) as caught:
        remove_user(project, settings.mlflow_admin_user, server=deployed)  # the admin is never removed
    assert f"`{fix}`" in str(caught.value)


@pytest.mark.parametrize(
    ("more", "students_url"),
    [
        ({}, "http://127.0.0.1:5001"),
        ({"BIND_ADDRESS": "0.0.0.0"}, "https://mlflow.school.example:5001"),
        (
            {"BIND_ADDRESS": "0.0.0.0", "MLFLOW_PUBLIC_HOSTS": "*.school.example,192.168.1.20"},
            "https://192.168.1.20:5001",
        ),
    ],
)
def test_in_lan_mode_students_are_sent_to_the_public_name(
    values: dict[str, str], more: dict[str, str], students_url: str
) -> None:
    from trackstack.auth import local_server

    settings = validate(values | AUTH | {"MLFLOW_PORT": "5001"} | more)
    server = local_server(settings, verify="trackstack-ca.crt")
    assert server.users_url == students_url
    # The tasks themselves still talk to this machine, verifying trackstack's CA (its certificate covers 127.0.0.1).
    assert server.url == settings.mlflow_url
    assert server.verify == "trackstack-ca.crt"
    if settings.mlflow_behind_proxy:
        assert settings.mlflow_url.startswith("https://127.0.0.1:")
        # A certificate of .env's or a public one covers the public names only: the tasks use the first.
        assert local_server(settings).url == students_url
