"""Leave no trace: delete a test's experiment for good, not just into MLflow's trash."""

from __future__ import annotations

import subprocess
from typing import Any

from tests.conftest import live_project
from trackstack.engine import compose_args
from trackstack.render import backend_store_uri


def purge_experiment(client: Any, experiment_id: str) -> None:
    """Delete the experiment and its runs, then `mlflow gc` exactly those inside the MLflow container.

    Naming the runs keeps gc away from anything a user deleted on purpose (still restorable).
    """
    runs = [run.info.run_id for run in client.search_runs([experiment_id], run_view_type=3)]  # 3: all
    for run_id in runs:
        client.delete_run(run_id)
    client.delete_experiment(experiment_id)
    project = live_project()
    settings = project.settings
    args = [
        "exec",
        "-T",
        # gc deletes artifacts through the tracking server, under a host name it allows.
        "-e",
        "MLFLOW_TRACKING_URI=http://mlflow:5000",
        "mlflow",
        "mlflow",
        "gc",
        f"--backend-store-uri={backend_store_uri(settings.postgres_user, settings.postgres_db)}",
        f"--experiment-ids={experiment_id}",
    ]
    if runs:
        args.append(f"--run-ids={','.join(runs)}")
    subprocess.run(compose_args(project, *args), check=True, capture_output=True)
