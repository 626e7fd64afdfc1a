"""A stack from before MLflow's own role (the superuser owned everything) is moved on `invoke up`, every run kept."""

from __future__ import annotations

from pathlib import Path

from tests.lifecycle.helpers import Invoke, assert_intact, log_runs
from trackstack import database, engine
from trackstack.project import Project


def test_an_old_superuser_stack_is_moved_to_mlflows_role(project: Project, invoke: Invoke, tmp_path: Path) -> None:
    settings = project.settings
    logged = log_runs(project, tmp_path)
    engine.compose(project, "stop", "mlflow", capture=True)  # Postgres keeps running for the SQL below
    # The old scheme: the superuser owns MLflow's databases and tables, and MLflow's role does not exist.
    superuser, role = database.identifier(settings.postgres_user), database.identifier(settings.mlflow_db_user)
    for name in settings.mlflow_databases:
        if database.psql(project, f"SELECT 1 FROM pg_database WHERE datname = {database.literal(name)}"):  # noqa: S608
            database.psql(project, f"REASSIGN OWNED BY {role} TO {superuser};", database=name)
    database.psql(project, f"DROP ROLE {role};")
    invoke("up")
    owner = database.psql(project, "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public';")
    assert owner == settings.mlflow_db_user
    assert_intact(project, logged, tmp_path)
