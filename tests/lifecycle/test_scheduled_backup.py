"""Scheduled backups on Compose: the stack's `backup` service writes a verified backup to BACKUP_DEST on
its schedule, `invoke backups` lists it, and `invoke restore latest --yes` brings the class back to it.

One switch of `.env` (a private copy with BACKUP_SCHEDULE="* * * * *" and BACKUP_DEST a temporary
directory) and back: about two minutes, most of it waiting for the minute and the first image build.
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.lifecycle.helpers import Invoke, assert_intact, containers, log_runs
from trackstack.backup_dest import DirectoryDestination
from trackstack.engine import compose_args
from trackstack.project import Project
from trackstack.validation import RELAXED, load_settings

EVERY_MINUTE = "* * * * *"


@pytest.fixture
def scheduled(project: Project, invoke: Invoke, tmp_path: Path) -> Iterator[tuple[Project, Path]]:
    """The live stack with a backup every minute into a private temporary directory; as before afterwards."""
    dest = tmp_path / "backups"
    dest.mkdir(mode=0o700)
    overrides = {"BACKUP_SCHEDULE": EVERY_MINUTE, "BACKUP_DEST": str(dest), "BACKUP_KEEP": "3"}
    kept = [
        line
        for line in project.env_file.read_text(encoding="utf-8").splitlines()
        if line.partition("=")[0].strip() not in overrides
    ]
    path = project.env_file.with_name(f"{project.env_file.name}.backup-test")
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        stream.write("\n".join([*kept, *(f"{key}={value}" for key, value in overrides.items())]) + "\n")
    with_backups = Project(root=ROOT, env_file=path, settings=load_settings(path, RELAXED))
    try:
        invoke("up", env_file=path)
        yield with_backups, dest
    finally:
        invoke("up")  # the original .env: the backup service is removed (an orphan of its compose file)
        path.unlink(missing_ok=True)


def _verified_after(dest: Path, moment: datetime, timeout: float = 150) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in DirectoryDestination(dest).entries() if e.verified and e.created > moment]
        if found:
            return found[0].name
        time.sleep(2)
    raise AssertionError(
        f"no verified backup in {dest} within {timeout:.0f}s: {sorted(p.name for p in dest.iterdir())}"
    )


def test_a_scheduled_backup_is_verified_listed_and_restored_with_latest(
    scheduled: tuple[Project, Path], invoke: Invoke, tmp_path: Path
) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    project, dest = scheduled
    assert containers(project)["backup"]["health"] in ("starting", "healthy")
    logged = log_runs(project, tmp_path, count=2)
    logged_at = datetime.now(UTC)
    name = _verified_after(dest, logged_at)
    assert containers(project)["backup"]["health"] == "healthy"

    listing = invoke("backups", env_file=project.env_file).stdout
    line = next(line for line in listing.splitlines() if name in line)
    assert " verified " in f"{line} "
    assert project.settings.mlflow_version in line

    # No newer backup may take the changes below: `latest` must be the one just verified.
    subprocess.run(compose_args(project, "stop", "backup"), check=True, capture_output=True)
    client = MlflowClient(tracking_uri=project.settings.mlflow_url)
    later = client.create_run(client.create_experiment(f"after-backup-{uuid.uuid4().hex[:8]}")).info.run_id
    victim = next(iter(logged.runs))
    client.delete_run(victim)
    newest = DirectoryDestination(dest).entries()[0]
    assert newest.verified

    restored = invoke("restore", "latest", "--yes", env_file=project.env_file)
    assert f"({newest.name})" in restored.stdout
    assert_intact(project, logged, tmp_path)
    assert client.get_run(victim).info.lifecycle_stage == "active"
    with pytest.raises(MlflowException, match="not found"):
        client.get_run(later)
