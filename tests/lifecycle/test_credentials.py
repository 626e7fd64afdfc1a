"""A Postgres password changed in `.env` reaches Postgres, MLflow and pgAdmin on `up`."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr

from tests.lifecycle.helpers import Invoke
from tests.live.pgadmin_api import PgAdmin
from trackstack.engine import Project
from trackstack.probes import connect_postgres
from trackstack.settings import Settings
from trackstack.validation import Policy, load_settings


def _connects(settings: Settings, password: str) -> bool:
    with_password = settings.model_copy(update={"postgres_password": SecretStr(password)})
    try:
        with connect_postgres(with_password) as conn:
            return bool(conn.execute("SELECT 1").fetchone() == (1,))
    except psycopg.OperationalError:
        return False


@pytest.fixture
def rotated(project: Project, invoke: Invoke, tmp_path: Path) -> Iterator[Path]:
    """A copy of `.env` with a new POSTGRES_PASSWORD; the original is put back afterwards."""
    new = secrets.token_urlsafe(18)
    text = "".join(
        f"POSTGRES_PASSWORD={new}\n" if line.startswith("POSTGRES_PASSWORD=") else line + "\n"
        for line in project.env_file.read_text().splitlines()
    )
    path = tmp_path / "rotated.env"
    path.write_text(text)
    yield path
    invoke("up")  # back to the original password


def test_changed_password_reaches_postgres_mlflow_and_pgadmin(project: Project, invoke: Invoke, rotated: Path) -> None:
    old = project.settings.postgres_password.get_secret_value()
    invoke("up", env_file=rotated)
    settings = load_settings(rotated, Policy(allow_weak_secrets=True))
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
