"""Smoke tests: each service answers, and MLflow really stores in Postgres and the artifact store.

The artifact store's tests pass against either store (ARTIFACT_STORE=minio or seaweedfs): they ask
the service table for its health path and talk S3 to it.

They reach the stack through `target` (tests/conftest.py): the compose stack here, the stack deployed
to Kubernetes when tests/k8s collects them (tests/k8s/test_smoke_suite.py). None is compose-only.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from tests.conftest import Target
from tests.live.cleanup import purge_experiment
from tests.live.pgadmin_api import PgAdmin
from trackstack.probes import connect_postgres
from trackstack.settings import Settings
from trackstack.storage import minio_client

Require = Callable[[str], None]


def _connect(settings: Settings) -> psycopg.Connection[Any]:
    connection: psycopg.Connection[Any] = connect_postgres(settings)
    return connection


# -- PostgreSQL --------------------------------------------------------------------------


def test_postgres_answers_select_1(target: Target, require_service: Require) -> None:
    settings = target.settings
    require_service("postgres")
    with _connect(settings) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_postgres_round_trip(target: Target, require_service: Require) -> None:
    settings = target.settings
    require_service("postgres")
    table = f"smoke_{uuid.uuid4().hex[:12]}"
    with _connect(settings) as conn:
        conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, note text)")
        try:
            conn.execute(f"INSERT INTO {table} VALUES (%s, %s), (%s, %s)", (1, "one", 2, "two"))  # noqa: S608
            rows = conn.execute(f"SELECT id, note FROM {table} ORDER BY id").fetchall()  # noqa: S608
            assert rows == [(1, "one"), (2, "two")]
        finally:
            conn.execute(f"DROP TABLE {table}")


def test_mlflow_tables_live_in_postgres(target: Target, require_service: Require) -> None:
    settings = target.settings
    require_service("postgres")
    with _connect(settings) as conn:
        rows = conn.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'").fetchall()
    tables = {name for (name,) in rows}
    assert {"experiments", "runs", "metrics", "params", "alembic_version"} <= tables


# -- The artifact store (MinIO or SeaweedFS) ---------------------------------------------


def test_artifact_store_is_live(target: Target, require_service: Require) -> None:
    settings = target.settings
    require_service("minio")
    endpoint = next(e for e in settings.store.endpoints if e.health_path)
    response = requests.get(f"{settings.url(endpoint.port_key)}{endpoint.health_path}", timeout=5)
    assert response.status_code == 200


def test_artifact_store_is_the_one_env_names(target: Target, require_service: Require) -> None:
    settings = target.settings
    require_service("minio")
    response = requests.get(settings.url("MINIO_API_PORT"), timeout=5)  # anonymous: refused, but signed
    assert response.headers.get("Server", "").startswith(settings.store.product)


def test_artifact_store_bucket_is_seeded(target: Target, require_service: Require) -> None:
    settings = target.settings
    require_service("minio")
    assert minio_client(settings).bucket_exists(settings.mlflow_bucket)


def test_artifact_store_multipart_and_presigned_download(target: Target, require_service: Require) -> None:
    """What MLflow's clients and the SDK rely on beyond a plain PUT: a multipart upload, a presigned GET."""
    from datetime import timedelta

    settings = target.settings
    require_service("minio")
    client = minio_client(settings)
    name = f"smoke/{uuid.uuid4().hex}-multipart.bin"
    part = 5 * 1024 * 1024  # S3's smallest part: two and a bit parts
    payload = uuid.uuid4().bytes * ((2 * part + 4096) // 16)
    client.put_object(settings.mlflow_bucket, name, io.BytesIO(payload), len(payload), part_size=part)
    try:
        assert client.stat_object(settings.mlflow_bucket, name).size == len(payload)
        url = client.presigned_get_object(settings.mlflow_bucket, name, expires=timedelta(minutes=5))
        response = requests.get(url, timeout=30)
        assert response.status_code == 200
        assert response.content == payload
    finally:
        client.remove_object(settings.mlflow_bucket, name)


def test_artifact_store_object_round_trip(target: Target, require_service: Require) -> None:
    settings = target.settings
    require_service("minio")
    client = minio_client(settings)
    name = f"smoke/{uuid.uuid4().hex}.bin"
    payload = uuid.uuid4().bytes * 64
    client.put_object(settings.mlflow_bucket, name, io.BytesIO(payload), len(payload))
    try:
        response = client.get_object(settings.mlflow_bucket, name)
        try:
            assert response.read() == payload
        finally:
            response.close()
            response.release_conn()
    finally:
        client.remove_object(settings.mlflow_bucket, name)


# -- MLflow ------------------------------------------------------------------------------


def test_mlflow_health(target: Target, require_service: Require) -> None:
    settings = target.settings
    require_service("mlflow")
    response = requests.get(f"{settings.mlflow_url}/health", timeout=5)
    assert (response.status_code, response.text.strip()) == (200, "OK")


def test_mlflow_version_is_the_pinned_one(target: Target, require_service: Require) -> None:
    settings = target.settings
    require_service("mlflow")
    response = requests.get(f"{settings.mlflow_url}/version", auth=target.admin, timeout=5)
    assert response.text.strip() == settings.mlflow_version


def test_mlflow_ui_is_served(target: Target, require_service: Require) -> None:
    settings = target.settings
    require_service("mlflow")
    response = requests.get(f"{settings.mlflow_url}/", auth=target.admin, timeout=10)
    assert response.status_code == 200
    assert "<title>MLflow</title>" in response.text


@pytest.fixture
def experiment(target: Target, require_service: Require, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    """A fresh experiment (as MLflow's admin where it asks for a login), purged afterwards with its runs and
    artifact objects."""
    from mlflow.tracking import MlflowClient

    settings = target.settings
    require_service("mlflow")
    require_service("minio")  # artifacts go through MLflow into the artifact store
    if target.admin:  # the client reads them from the environment on every request
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", target.admin[0])
        monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", target.admin[1])
    client = MlflowClient(tracking_uri=settings.mlflow_url)
    experiment_id = client.create_experiment(f"smoke-{uuid.uuid4().hex[:12]}")
    try:
        yield client, experiment_id
    finally:
        purge_experiment(client, experiment_id, target.collect)
        s3 = minio_client(settings)
        leftovers = list(s3.list_objects(settings.mlflow_bucket, prefix=f"{experiment_id}/", recursive=True))
        assert leftovers == [], "mlflow gc left artifact objects behind"


def test_mlflow_tracks_through_the_server(
    experiment: tuple[Any, str], target: Target, require_service: Require, tmp_path: Path
) -> None:
    from mlflow.entities import Metric, Param

    settings = target.settings
    client, experiment_id = experiment
    run = client.create_run(experiment_id)
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric("loss", 1.0 / (step + 1), now, step) for step in range(10)],
        params=[Param("lr", "0.01"), Param("model", "smoke")],
    )
    artifact = tmp_path / "model.txt"
    artifact.write_bytes(b"trackstack smoke artifact " + run_id.encode())
    client.log_artifact(run_id, str(artifact))
    client.set_terminated(run_id)

    stored = client.get_run(run_id)
    assert stored.data.params == {"lr": "0.01", "model": "smoke"}
    history = client.get_metric_history(run_id, "loss")
    assert [m.step for m in sorted(history, key=lambda m: m.step)] == list(range(10))
    assert [a.path for a in client.list_artifacts(run_id)] == ["model.txt"]
    downloaded = Path(client.download_artifacts(run_id, "model.txt", str(tmp_path / "back")))
    assert downloaded.read_bytes() == artifact.read_bytes()

    # The artifact went through the tracking server into the artifact store's bucket.
    require_service("minio")
    s3 = minio_client(settings)
    keys = [
        obj.object_name
        for obj in s3.list_objects(settings.mlflow_bucket, prefix=f"{experiment_id}/", recursive=True)
        if run_id in obj.object_name and obj.object_name.endswith("/model.txt")
    ]
    assert len(keys) == 1, keys
    response = s3.get_object(settings.mlflow_bucket, keys[0])
    try:
        assert response.read() == artifact.read_bytes()
    finally:
        response.close()
        response.release_conn()


# -- pgAdmin -----------------------------------------------------------------------------


def test_pgadmin_ping(target: Target, require_service: Require) -> None:
    settings = target.settings
    require_service("pgadmin")
    response = requests.get(f"{settings.url('PGADMIN_PORT')}/misc/ping", timeout=5)
    assert (response.status_code, response.text.strip()) == (200, "PING")


@pytest.fixture
def pgadmin(target: Target, require_service: Require) -> PgAdmin:
    settings = target.settings
    require_service("pgadmin")
    client = PgAdmin(settings.url("PGADMIN_PORT"))
    assert client.login(settings.pgadmin_default_email, settings.pgadmin_default_password.get_secret_value())
    return client


def test_pgadmin_rejects_a_wrong_password(target: Target, require_service: Require) -> None:
    settings = target.settings
    require_service("pgadmin")
    assert not PgAdmin(settings.url("PGADMIN_PORT")).login(settings.pgadmin_default_email, "not-the-password")


def test_pgadmin_lists_the_seeded_server(pgadmin: PgAdmin, target: Target) -> None:
    settings = target.settings
    servers = [(group, node) for group, node in pgadmin.servers() if node["label"] == "localhost"]
    assert len(servers) == 1, "exactly one server named localhost"
    group, node = servers[0]
    properties = pgadmin.properties(group, int(node["_id"]))
    assert properties["host"] == "postgres"
    assert properties["port"] == 5432
    assert properties["username"] == settings.postgres_user
    assert properties["db"] == settings.postgres_db


def test_pgadmin_connects_without_asking_for_a_password(pgadmin: PgAdmin) -> None:
    ((group, node),) = [(g, n) for g, n in pgadmin.servers() if n["label"] == "localhost"]
    response = pgadmin.post(f"/browser/server/connect/{group}/{node['_id']}", {})
    assert response.status_code == 200, response.text[:300]
    assert response.json()["data"]["connected"] is True
    pgadmin.session.delete(
        f"{pgadmin.base_url}/browser/server/connect/{group}/{node['_id']}",
        headers={"X-pgA-CSRFToken": pgadmin.csrf},
        timeout=15,
    )
