from __future__ import annotations

from pathlib import Path

import pytest
from dotenv import dotenv_values

from tests.conftest import ROOT
from trackstack.problems import SettingsError
from trackstack.settings import KEYS, SECRET_KEYS, USER_SECRET_KEYS, Settings
from trackstack.validation import Policy, load_settings, validate


def test_example_documents_every_key_once() -> None:
    example = dotenv_values(ROOT / ".env.example", interpolate=False)
    assert list(example) == list(KEYS)


def test_course_defaults(settings: Settings) -> None:
    assert settings.published_ports() == {
        "MLFLOW_PORT": 5001,
        "PGADMIN_PORT": 5051,
        "MINIO_CONSOLE_PORT": 9001,
        "MINIO_API_PORT": 9000,
        "POSTGRES_PORT": 5432,
    }
    assert settings.bind_address == "127.0.0.1"
    assert settings.restart_policy == "always"
    assert settings.mlflow_url == "http://127.0.0.1:5001"


def test_example_placeholders_count_as_weak() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(ROOT / ".env.example")
    assert {p.key for p in caught.value.problems} == SECRET_KEYS - USER_SECRET_KEYS


def test_secrets_are_not_in_repr(settings: Settings) -> None:
    for secret in settings.secret_values():
        assert secret not in repr(settings)


# (key, bad value, words the reason must contain)
BAD_VALUES = [
    ("MLFLOW_PORT", "abc", "not a whole number"),
    ("PGADMIN_PORT", "0", "out of range"),
    ("POSTGRES_PORT", "70000", "out of range"),
    ("RESTART_POLICY", "sometimes", "not a known value"),
    ("BIND_ADDRESS", "localhost", "IPv4"),
    ("COMPOSE_PROJECT_NAME", "My Stack", "project name"),
    ("MLFLOW_BUCKET", "My_Bucket", "bucket"),
    ("MLFLOW_BUCKET", "ab", "bucket"),
    ("MLFLOW_BUCKET", "192.168.1.1", "bucket"),
    ("MINIO_ROOT_USER", "ab", "3 characters"),
    ("MINIO_ROOT_PASSWORD", "short", "8 characters"),
    ("POSTGRES_PASSWORD", "", "empty password"),
    ("PGADMIN_DEFAULT_PASSWORD", "", "empty password"),
    ("PGADMIN_DEFAULT_PASSWORD", "Ab3$x", "'$'"),
    ("PGADMIN_DEFAULT_PASSWORD", "Ab3xy", "at least 6 characters"),
    ("POSTGRES_PASSWORD", "line-one\nline-two", "control character"),
    ("MINIO_ROOT_PASSWORD", "tab\tinside-it", "control character"),
    ("PGADMIN_DEFAULT_EMAIL", "not-an-email", "e-mail"),
    ("PGADMIN_DEFAULT_EMAIL", "admin@pgadmin.local", ".local"),
    ("PGADMIN_DEFAULT_EMAIL", 'ad"min@example.com', "e-mail"),
    ("MINIO_ROOT_USER", 'minio"\n  INJECTED: "yes', "control character"),
    ("MINIO_ROOT_USER", 'minio"user', "access key"),
    ("MLFLOW_ADMIN_PASSWORD", "line\u2028separated-password", "control character"),
    ("MINIO_ROOT_PASSWORD", "next\x85line-password", "control character"),
    ("POSTGRES_USER", "ml-flow", "PostgreSQL name"),
    ("POSTGRES_IMAGE", "postgres", "not pinned"),
    ("MINIO_IMAGE", "quay.io/minio/minio:latest", "not pinned"),
    ("MLFLOW_VERSION", "3", "exact release"),
    ("MLFLOW_VERSION", "2.22.0", "3.5"),
    ("MLFLOW_WORKERS", "0", "out of range"),
    ("POSTGRES_PASSWORD", "password", "weak"),
    ("PGADMIN_DEFAULT_PASSWORD", "changeme", "weak"),
    ("MINIO_ROOT_PASSWORD", "minioadmin", "weak"),
    ("MINIO_ROOT_PASSWORD", "trackstack", "weak"),  # equal to MINIO_ROOT_USER
    ("POSTGRES_PASSWORD", "a$b-strong-enough", "'$'"),
]


@pytest.mark.parametrize(("key", "bad", "reason"), BAD_VALUES)
def test_bad_value_is_named_with_its_fix(values: dict[str, str], key: str, bad: str, reason: str) -> None:
    values[key] = bad
    with pytest.raises(SettingsError) as caught:
        validate(values)
    problems = [p for p in caught.value.problems if p.key == key]
    assert len(problems) == 1, caught.value
    assert reason in problems[0].reason
    assert problems[0].fix
    message = str(caught.value)
    assert f"{key}=" in message
    if key in SECRET_KEYS and bad:
        assert f"={bad}" not in message  # secrets are masked
        assert "<hidden" in message


def test_every_problem_is_reported_at_once(values: dict[str, str]) -> None:
    values |= {"MLFLOW_PORT": "abc", "MINIO_ROOT_PASSWORD": "short", "MLFLOW_BUCKET": "X"}
    del values["POSTGRES_DB"]
    with pytest.raises(SettingsError) as caught:
        validate(values)
    assert {p.key for p in caught.value.problems} == {
        "MLFLOW_PORT",
        "MINIO_ROOT_PASSWORD",
        "MLFLOW_BUCKET",
        "POSTGRES_DB",
    }


def test_missing_key_points_at_example(values: dict[str, str]) -> None:
    del values["MINIO_ROOT_USER"]
    with pytest.raises(SettingsError, match=r"MINIO_ROOT_USER: missing\. Fix: add MINIO_ROOT_USER="):
        validate(values)


def test_unknown_key_suggests_the_typo_fix(values: dict[str, str]) -> None:
    values["POSTGRS_USER"] = "x"
    with pytest.raises(SettingsError, match="did you mean POSTGRES_USER"):
        validate(values)


def test_two_services_on_one_port(values: dict[str, str]) -> None:
    values["PGADMIN_PORT"] = values["MLFLOW_PORT"]
    with pytest.raises(SettingsError) as caught:
        validate(values)
    (problem,) = caught.value.problems
    assert problem.key == "PGADMIN_PORT"
    assert "MLFLOW_PORT uses port 5001 too" in problem.reason


def test_policy_flags_relax_only_their_rule(values: dict[str, str]) -> None:
    values |= {"POSTGRES_PASSWORD": "password", "PGADMIN_IMAGE": "dpage/pgadmin4:latest"}
    settings = validate(values, policy=Policy(allow_weak_secrets=True, allow_unpinned=True))
    assert settings.pgadmin_image == "dpage/pgadmin4:latest"
    with pytest.raises(SettingsError, match="not pinned"):
        validate(values, policy=Policy(allow_weak_secrets=True))


def test_digest_pinned_image_is_accepted(values: dict[str, str]) -> None:
    values["POSTGRES_IMAGE"] = "postgres@sha256:" + "a" * 64
    assert validate(values).postgres_image.startswith("postgres@sha256:")


def test_malformed_line_is_reported_with_its_number(tmp_path: Path, values: dict[str, str]) -> None:
    lines = [f"{k}={v}" for k, v in values.items()]
    lines.insert(3, "this line has no equals sign but 'a quote")
    env = tmp_path / ".env"
    env.write_text("\n".join(lines) + "\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert [p.key for p in caught.value.problems] == ["line 4"]


@pytest.mark.parametrize(
    "line",
    [
        'POSTGRES_PASSWORD="s3cr3t-Value-never-shown',  # an unclosed quote
        "s3cr3t-Value-never-shown",  # a password that slipped onto its own line
    ],
)
def test_an_unparsable_line_is_never_quoted(tmp_path: Path, values: dict[str, str], line: str) -> None:
    lines = [f"{k}={v}" for k, v in values.items() if k != "POSTGRES_PASSWORD"]
    env = tmp_path / ".env"
    env.write_text("\n".join([*lines, line, "# trailing comment"]) + "\n")
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert "s3cr3t" not in str(caught.value)
    assert "line " in str(caught.value)


def test_missing_file_says_how_to_create_it(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="invoke init"):
        load_settings(tmp_path / ".env")


def test_reading_does_not_touch_os_environ(tmp_path: Path, values: dict[str, str]) -> None:
    import os

    env = tmp_path / ".env"
    env.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    before = dict(os.environ)
    load_settings(env)
    assert dict(os.environ) == before
