"""Deleted runs reclaimed on Compose: `invoke gc` removes a run deleted more than MLFLOW_GC_OLDER_THAN ago
from MLflow's database and its artifact objects from the bucket, and leaves live runs alone; the
scheduled `gc` service (MLFLOW_GC_SCHEDULE) does the same on its own.

Both use a private copy of `.env` with MLFLOW_GC_OLDER_THAN=0s (everything deleted so far), so they
also reclaim what other tests left deleted. The first starts nothing; the second switches the stack to
a gc every minute and back (about two minutes, most of it waiting for the minute).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.lifecycle.helpers import Invoke, Logged, bucket_objects, containers, log_runs
from trackstack.project import Project
from trackstack.validation import RELAXED, load_settings


def _env_copy(project: Project, name: str, overrides: dict[str, str]) -> Project:
    """A private copy of the stack's `.env` with `overrides`, beside it."""
    kept = [
        line
        for line in project.env_file.read_text(encoding="utf-8").splitlines()
        if line.partition("=")[0].strip() not in overrides
    ]
    path = project.env_file.with_name(f"{project.env_file.name}.{name}")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        stream.write("\n".join([*kept, *(f"{key}={value}" for key, value in overrides.items())]) + "\n")
    return Project(root=ROOT, env_file=path, settings=load_settings(path, RELAXED))


def _delete_one(project: Project, tmp_path: Path) -> tuple[Logged, str, str]:
    """Two runs with an artifact each; the first deleted (restorable until gc). (runs, deleted, kept)."""
    from mlflow.tracking import MlflowClient

    logged = log_runs(project, tmp_path, count=2)
    deleted, kept = list(logged.runs)
    MlflowClient(tracking_uri=project.settings.mlflow_url).delete_run(deleted)
    assert _objects_of(project, logged, deleted), "the deleted run's artifact is in the bucket until gc"
    return logged, deleted, kept


def _objects_of(project: Project, logged: Logged, run_id: str) -> list[str]:
    return [key for key in bucket_objects(project) if key.startswith(f"{logged.experiment_id}/{run_id}/")]


def _run_exists(project: Project, run_id: str) -> bool:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        MlflowClient(tracking_uri=project.settings.mlflow_url).get_run(run_id)
    except MlflowException as error:
        if error.error_code != "RESOURCE_DOES_NOT_EXIST":
            raise
        return False
    return True


def test_invoke_gc_removes_a_deleted_run_and_its_artifacts_and_keeps_the_others(
    project: Project, invoke: Invoke, tmp_path: Path
) -> None:
    logged, deleted, kept = _delete_one(project, tmp_path)
    at_once = _env_copy(project, "gc-test", {"MLFLOW_GC_OLDER_THAN": "0s"})
    try:
        output = invoke("gc", env_file=at_once.env_file).stdout
    finally:
        at_once.env_file.unlink(missing_ok=True)
    assert f"Run with ID {deleted} has been permanently deleted" in output
    assert not _run_exists(project, deleted)
    assert _objects_of(project, logged, deleted) == []
    assert _run_exists(project, kept)
    assert _objects_of(project, logged, kept) != []


@pytest.fixture
def scheduled(project: Project, invoke: Invoke) -> Iterator[Project]:
    """The live stack with a gc every minute of everything deleted; as before afterwards."""
    with_gc = _env_copy(project, "gc-schedule-test", {"MLFLOW_GC_SCHEDULE": "* * * * *", "MLFLOW_GC_OLDER_THAN": "0s"})
    try:
        invoke("up", env_file=with_gc.env_file)
        yield with_gc
    finally:
        invoke("up")  # the original .env: the gc service is removed (an orphan of its compose file)
        with_gc.env_file.unlink(missing_ok=True)


def test_the_scheduled_gc_service_reclaims_a_deleted_run(scheduled: Project, tmp_path: Path) -> None:
    logged, deleted, kept = _delete_one(scheduled, tmp_path)
    deadline = time.monotonic() + 150  # the next minute, and gc's own start (MLflow's imports: ~20 s)
    while _run_exists(scheduled, deleted) and time.monotonic() < deadline:
        time.sleep(3)
    assert not _run_exists(scheduled, deleted), "the gc service did not reclaim the deleted run in 150 s"
    assert _objects_of(scheduled, logged, deleted) == []
    assert _run_exists(scheduled, kept)
    assert containers(scheduled)["gc"]["health"] == "healthy"
