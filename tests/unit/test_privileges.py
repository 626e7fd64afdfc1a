"""Least privilege: MLflow's own Postgres role and S3 user, never the superuser or the root keys."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.unit.conftest import STRONG
from tests.unit.test_render import compose_of
from trackstack import privileges
from trackstack.envfile import add_missing_secrets
from trackstack.problems import SettingsError
from trackstack.settings import Settings
from trackstack.shared_server import prepare_command
from trackstack.targets.compose.render import mlflow_server_args
from trackstack.validation import validate


def test_the_role_is_derived_and_may_not_create_or_administer(settings: Settings) -> None:
    assert settings.mlflow_db_user == "mlflow_mlflow"
    assert settings.mlflow_databases == ("mlflow", "mlflow_auth")
    sql = privileges.create_role_sql(settings.mlflow_db_user)
    assert "NOSUPERUSER NOCREATEDB NOCREATEROLE" in sql
    assert settings.mlflow_db_password.get_secret_value() not in sql


def test_the_role_script_owns_both_databases_and_moves_their_objects(values: dict[str, str]) -> None:
    settings = validate(values | {"MLFLOW_AUTH": "true"})
    script = privileges.role_script(settings)
    assert "CREATE DATABASE %I OWNER %I', 'mlflow_auth', 'mlflow_mlflow'" in script
    assert script.count("ALTER DATABASE %I OWNER TO %I") == 2
    assert '\\connect "mlflow"' in script
    assert '\\connect "mlflow_auth"' in script
    # Never REASSIGN OWNED BY the bootstrap superuser: Postgres refuses (its system objects).
    assert "REASSIGN" not in script
    assert "PASSWORD 'mlflow-db-Strong-Secret-4716'" in script


def test_a_password_with_a_quote_stays_one_literal(values: dict[str, str]) -> None:
    settings = validate(values | {"MLFLOW_DB_PASSWORD": "it's-a-long-one'; DROP ROLE x; --"})
    assert "PASSWORD 'it''s-a-long-one''; DROP ROLE x; --';" in privileges.role_script(settings)


def test_the_prepare_plan_holds_no_secret(settings: Settings) -> None:
    command = " ".join(prepare_command(settings))
    assert [secret for secret in settings.secret_values() if secret in command] == []
    assert settings.mlflow_db_user in command


def test_the_bucket_policy_allows_objects_and_listing_of_one_bucket_only() -> None:
    policy = privileges.bucket_policy("mlflow")
    actions = {action for statement in policy["Statement"] for action in statement["Action"]}
    resources = {r for statement in policy["Statement"] for r in statement["Resource"]}
    assert resources == {"arn:aws:s3:::mlflow", "arn:aws:s3:::mlflow/*"}
    assert not {"s3:CreateBucket", "s3:DeleteBucket", "s3:ListAllMyBuckets", "s3:*"} & actions


def test_seaweedfs_identity_is_scoped_to_the_bucket(settings: Settings) -> None:
    command = privileges.seaweedfs_configure(settings)
    assert "-actions Read:mlflow,Write:mlflow,List:mlflow -apply" in command
    assert "-user trackstack-mlflow" in command


def test_compose_gives_mlflow_neither_the_superuser_nor_the_root_keys(settings: Settings) -> None:
    mlflow = compose_of(settings)["services"]["mlflow"]
    environment = mlflow["environment"]
    text = yaml.safe_dump(mlflow)
    assert "POSTGRES_PASSWORD" not in text
    assert "MINIO_ROOT" not in text
    assert environment["PGPASSWORD"] == "${MLFLOW_DB_PASSWORD:?set MLFLOW_DB_PASSWORD in .env}"
    assert environment["AWS_SECRET_ACCESS_KEY"] == "${MLFLOW_S3_SECRET_KEY:?set MLFLOW_S3_SECRET_KEY in .env}"
    assert environment["AWS_ACCESS_KEY_ID"] == "trackstack-mlflow"
    assert any("//mlflow_mlflow@" in arg for arg in mlflow_server_args(settings))


def test_init_adds_the_secrets_an_older_env_lacks(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("POSTGRES_PASSWORD=kept\n", encoding="utf-8")
    added = add_missing_secrets(env)
    assert {"MLFLOW_DB_PASSWORD", "MLFLOW_S3_SECRET_KEY"} <= set(added)
    text = env.read_text(encoding="utf-8")
    assert text.startswith("POSTGRES_PASSWORD=kept\n")
    assert add_missing_secrets(env) == []


def test_a_missing_new_secret_names_invoke_init(values: dict[str, str]) -> None:
    del values["MLFLOW_DB_PASSWORD"]
    with pytest.raises(SettingsError) as caught:
        validate(values)
    assert "invoke init" in str(caught.value)
    assert STRONG["MLFLOW_S3_SECRET_KEY"] not in str(caught.value)
