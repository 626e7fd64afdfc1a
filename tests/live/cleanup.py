"""Leave no trace: delete a test's experiment for good, not just into MLflow's trash."""

from __future__ import annotations

import subprocess
from typing import Any

from tests.conftest import Collect
from trackstack.containers import backend_store_uri
from trackstack.engine import compose_args
from trackstack.project import Project
from trackstack.settings import Settings


def purge_experiment(client: Any, experiment_id: str, collect: Collect) -> None:
    """Delete the experiment and its runs, then `mlflow gc` exactly those inside the stack.

    Naming the runs keeps gc away from anything a user deleted on purpose (still restorable).
    """
    runs = [run.info.run_id for run in client.search_runs([experiment_id], run_view_type=3)]  # 3: all
    for run_id in runs:
        client.delete_run(run_id)
    client.delete_experiment(experiment_id)
    collect(experiment_id, runs)


def gc_args(settings: Settings, experiment_id: str, runs: list[str]) -> list[str]:
    """`mlflow gc` of these runs, as the MLflow container runs it (as MLflow's own role: its password is
    the container's)."""
    args = [
        "mlflow",
        "gc",
        # MLflow's own role: the container's PGPASSWORD is its password (privileges.py).
        f"--backend-store-uri={backend_store_uri(settings.mlflow_db_user, settings.postgres_db)}",
        f"--experiment-ids={experiment_id}",
    ]
    return [*args, f"--run-ids={','.join(runs)}"] if runs else args


def compose_gc(project: Project, experiment_id: str, runs: list[str]) -> None:
    """gc in the compose stack's MLflow container."""
    # gc deletes artifacts through the tracking server, under a host name it allows.
    args = ["exec", "-T", "-e", "MLFLOW_TRACKING_URI=http://mlflow:5000", "mlflow"]
    subprocess.run(compose_args(project, *args, *gc_args(project.settings, experiment_id, runs)), check=True,
                   capture_output=True)  # fmt: skip
