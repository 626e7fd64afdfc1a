"""Least privilege on the running Compose stack: MLflow holds only its own role and S3 user."""

from __future__ import annotations

import io
import uuid

import pytest
from minio import Minio
from minio.error import S3Error

from tests.conftest import Target
from tests.live.test_smoke import Require, _connect
from trackstack import engine
from trackstack.project import Project


def test_mlflow_has_no_superuser_or_root_credentials(
    project: Project, target: Target, require_service: Require
) -> None:
    require_service("mlflow")
    settings = target.settings
    environment = engine.compose(project, "exec", "-T", "mlflow", "env", capture=True).stdout
    held = {name for name, secret in (("POSTGRES_PASSWORD", settings.postgres_password),
                                      ("MINIO_ROOT_PASSWORD", settings.minio_root_password))
            if secret.get_secret_value() in environment}  # fmt: skip
    assert held == set()
    assert f"PGUSER={settings.mlflow_db_user}\n" in environment


def test_mlflows_role_owns_its_databases_and_is_no_superuser(target: Target, require_service: Require) -> None:
    require_service("postgres")
    settings = target.settings
    with _connect(settings) as conn:
        attributes = conn.execute(
            "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = %s", (settings.mlflow_db_user,)
        ).fetchone()
        owners = dict(conn.execute("SELECT datname, pg_get_userbyid(datdba) FROM pg_database").fetchall())
        tables = conn.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public' AND tableowner <> %s",
            (settings.mlflow_db_user,),
        ).fetchone()
    assert attributes == (False, False, False)
    assert owners[settings.postgres_db] == settings.mlflow_db_user
    if settings.mlflow_auth:
        assert owners[settings.mlflow_auth_db] == settings.mlflow_db_user
    assert tables == (0,)  # every MLflow table, including those of a stack made before the role


def test_mlflows_s3_user_reaches_its_bucket_only(target: Target, require_service: Require) -> None:
    require_service("minio")
    settings = target.settings
    client = Minio(
        f"{settings.host}:{settings.ports['MINIO_API_PORT']}",
        access_key=settings.mlflow_s3_access_key,
        secret_key=settings.mlflow_s3_secret_key.get_secret_value(),
        secure=False,
    )
    key = f"privileges-{uuid.uuid4().hex[:12]}"
    client.put_object(settings.mlflow_bucket, key, io.BytesIO(b"ok"), 2)
    try:
        assert client.get_object(settings.mlflow_bucket, key).read() == b"ok"
    finally:
        client.remove_object(settings.mlflow_bucket, key)
    # MinIO lists only the buckets a user may use; another store may refuse the listing instead.
    refused = ""
    listed: set[str] = set()
    try:
        listed = {bucket.name for bucket in client.list_buckets()}
    except S3Error as error:
        refused = error.code or "?"
    assert refused in ("", "AccessDenied")
    assert listed <= {settings.mlflow_bucket}
    with pytest.raises(S3Error) as creating:
        client.make_bucket(f"privileges-{uuid.uuid4().hex[:12]}")
    assert creating.value.code == "AccessDenied"
