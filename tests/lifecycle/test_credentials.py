"""Passwords changed in `.env` reach their services on `up`: Postgres (and MLflow and pgAdmin's
server entry), pgAdmin's own login and MinIO's root login."""

from __future__ import annotations

import secrets
from pathlib import Path

import psycopg
from pydantic import SecretStr

from tests.lifecycle.helpers import Invoke
from tests.live.pgadmin_api import PgAdmin
from trackstack.probes import connect_postgres
from trackstack.project import Project
from trackstack.settings import Settings
from trackstack.validation import Policy, load_settings


def _connects(settings: Settings, password: str) -> bool:
    with_password = settings.model_copy(update={"postgres_password": SecretStr(password)})
    try:
        with connect_postgres(with_password) as conn:
            return bool(conn.execute("SELECT 1").fetchone() == (1,))
    except psycopg.OperationalError:
        return False


def _rotated_env(project: Project, tmp_path: Path, *keys: str) -> Path:
    """A copy of `.env` with new values for `keys`."""
    new = {key: secrets.token_urlsafe(18) for key in keys}
    text = "".join(
        f"{key}={new[key]}\n" if (key := line.partition("=")[0]) in new else line + "\n"
        for line in project.env_file.read_text().splitlines()
    )
    path = tmp_path / "rotated.env"
    path.write_text(text)
    return path


def _minio_accepts(settings: Settings, user: str, password: str) -> bool:
    from minio import Minio
    from minio.error import S3Error

    client = Minio(f"{settings.url('MINIO_API_PORT').removeprefix('http://')}", access_key=user,
                   secret_key=password, secure=False)  # fmt: skip
    try:
        return bool(client.bucket_exists(settings.mlflow_bucket))
    except S3Error:
        return False


def test_changed_logins_and_password_are_applied_on_up_and_back(
    project: Project, invoke: Invoke, tmp_path: Path
) -> None:
    """Every credential in `.env` changed at once (one stack cycle each way, which is what costs):
    pgAdmin's and MinIO's logins, and the Postgres password reaching Postgres, MLflow and pgAdmin."""
    old = project.settings
    rotated_env = _rotated_env(
        project, tmp_path, "PGADMIN_DEFAULT_PASSWORD", "MINIO_ROOT_PASSWORD", "POSTGRES_PASSWORD"
    )
    try:
        result = invoke("up", env_file=rotated_env)
        assert "pgAdmin: login PGADMIN_DEFAULT_EMAIL / PGADMIN_DEFAULT_PASSWORD from .env applied" in result.stdout
        new = load_settings(rotated_env, Policy(allow_weak_secrets=True))
        assert PgAdmin(new.url("PGADMIN_PORT")).login(new.pgadmin_default_email,
                                                      new.pgadmin_default_password.get_secret_value())  # fmt: skip
        assert not PgAdmin(new.url("PGADMIN_PORT")).login(old.pgadmin_default_email,
                                                          old.pgadmin_default_password.get_secret_value())  # fmt: skip
        assert _minio_accepts(new, new.minio_root_user, new.minio_root_password.get_secret_value())
        assert not _minio_accepts(new, old.minio_root_user, old.minio_root_password.get_secret_value())
        # Tasks that talk to MinIO work with the new login (MLflow got it too: it logs artifacts there).
        assert invoke("status", env_file=rotated_env).returncode == 0
        _new_postgres_password_reaches_everyone(new, old.postgres_password.get_secret_value())
    finally:
        invoke("up")  # back to the original logins
    assert PgAdmin(old.url("PGADMIN_PORT")).login(old.pgadmin_default_email,
                                                  old.pgadmin_default_password.get_secret_value())  # fmt: skip
    assert _minio_accepts(old, old.minio_root_user, old.minio_root_password.get_secret_value())
    assert _connects(old, old.postgres_password.get_secret_value())


def _new_postgres_password_reaches_everyone(settings: Settings, old: str) -> None:
    new = settings.postgres_password.get_secret_value()
    assert _connects(settings, new)
    assert not _connects(settings, old)

    # MLflow reconnected with the new password (its tables are in Postgres).
    from mlflow.tracking import MlflowClient

    assert MlflowClient(tracking_uri=settings.mlflow_url).search_experiments()

    pgadmin = PgAdmin(settings.url("PGADMIN_PORT"))
    assert pgadmin.login(settings.pgadmin_default_email, settings.pgadmin_default_password.get_secret_value())
    ours = [(g, n) for g, n in pgadmin.servers() if n["label"] == "localhost"]
    assert len(ours) == 1  # replaced, not duplicated
    ((group, node),) = ours
    response = pgadmin.post(f"/browser/server/connect/{group}/{node['_id']}", {})
    assert response.status_code == 200, response.text[:300]
    assert response.json()["data"]["connected"] is True
