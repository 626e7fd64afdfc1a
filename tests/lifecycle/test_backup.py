"""Backups round-trip through a reset; corrupt or partial backups are refused untouched."""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

import pytest
import requests

from tests.conftest import AuthStack
from tests.lifecycle.helpers import (
    Invoke,
    Logged,
    assert_intact,
    bucket_objects,
    experiment_names,
    log_runs,
    wait_all_healthy,
)
from trackstack.project import Project


def _written_backup(output: str) -> Path:
    match = re.search(r"backup written to (\S+)", output)
    assert match, output
    return Path(match[1])


@pytest.fixture(scope="module")
def saved(project: Project, invoke: Invoke, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Logged]:
    tmp = tmp_path_factory.mktemp("backup")
    logged = log_runs(project, tmp, count=3)
    folder = _written_backup(invoke("backup", "--into", str(tmp / "backups")).stdout)
    return folder, logged


def test_backup_folder_has_a_manifest_dump_and_every_object(saved: tuple[Path, Logged], project: Project) -> None:
    folder, _ = saved
    assert (folder / "manifest.json").is_file()
    assert (folder / "postgres.dump").read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    stored = {p.relative_to(folder / "artifacts").as_posix() for p in (folder / "artifacts").rglob("*") if p.is_file()}
    assert stored == set(bucket_objects(project))


def test_corrupt_backup_is_refused_and_nothing_changes(
    saved: tuple[Path, Logged], project: Project, invoke: Invoke, tmp_path: Path
) -> None:
    folder, _ = saved
    corrupt = tmp_path / "corrupt"
    shutil.copytree(folder, corrupt)
    victim = next(p for p in (corrupt / "artifacts").rglob("*") if p.is_file())
    data = victim.read_bytes()
    victim.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))  # always another byte (a random one was b"!" 1 in 256)
    before = (experiment_names(project), bucket_objects(project))
    result = invoke("restore", str(corrupt), check=False)
    assert result.returncode != 0
    assert "checksum mismatch" in result.stderr
    assert "nothing was restored" in result.stderr
    assert (experiment_names(project), bucket_objects(project)) == before


def test_partial_backup_is_refused(saved: tuple[Path, Logged], invoke: Invoke, tmp_path: Path) -> None:
    folder, _ = saved
    partial = tmp_path / "partial"
    shutil.copytree(folder, partial)
    (partial / "manifest.json").unlink()
    result = invoke("restore", str(partial), check=False)
    assert result.returncode != 0
    assert "incomplete backup" in result.stderr


def test_reset_backs_up_empties_every_volume_and_restore_brings_everything_back(
    saved: tuple[Path, Logged], project: Project, invoke: Invoke, tmp_path: Path
) -> None:
    """One reset serves three promises (each costs a fresh stack): `reset --backup` writes a
    complete backup first, `reset --yes` leaves empty volumes and a healthy seeded stack, and a
    backup restores every run, metric step and artifact byte."""
    folder, logged = saved
    objects = bucket_objects(project)
    result = invoke("reset", "--yes", "--backup")
    deleted = re.search(r"deleted \d+ volumes: (.*)", result.stdout)
    assert deleted, result.stdout
    # The data volumes; the LAN-mode proxy's (its certificates' state) too when an earlier test made it.
    assert {f"{project.name}_{name}" for name in ("postgres-data", "minio-data", "pgadmin-data")} <= set(
        deleted.group(1).split(", ")
    )
    written = _written_backup(result.stdout)
    assert (written / "manifest.json").is_file()
    assert (written / "postgres.dump").read_bytes()[:5] == b"PGDMP"
    assert {
        p.relative_to(written / "artifacts").as_posix() for p in (written / "artifacts").rglob("*") if p.is_file()
    } == set(objects)
    shutil.rmtree(written)
    assert experiment_names(project) == {"Default"}
    assert bucket_objects(project) == {}  # the bucket exists again, seeded and empty
    wait_all_healthy(project, timeout=60)  # and the engine agrees that every service is healthy
    result = invoke("restore", str(folder))
    assert "restored" in result.stdout
    assert_intact(project, logged, tmp_path)
    assert bucket_objects(project) == objects


def test_a_students_login_and_permission_survive_backup_reset_and_restore(
    auth_stack: AuthStack, invoke: Invoke, tmp_path: Path
) -> None:
    """user.add, backup, reset --yes, restore: the student logs in again and still manages their experiment."""
    url = auth_stack.project.settings.mlflow_url
    name = f"student-{uuid.uuid4().hex[:8]}"
    added = invoke("user.add", name, check=False, env_file=auth_stack.project.env_file)
    assert added.returncode == 0, added.stderr
    match = re.search(r"its password \(shown only now\): (\S+)", added.stdout)
    assert match, added.stdout
    student = (name, match[1])
    created = requests.post(f"{url}/api/2.0/mlflow/experiments/create", json={"name": f"own-{name}"}, auth=student,
                            timeout=30, verify=auth_stack.verify)  # fmt: skip
    assert created.status_code == 200, created.text
    experiment_id = created.json()["experiment_id"]
    auth_stack.experiments.append(experiment_id)

    written = invoke("backup", "--into", str(tmp_path), check=False, env_file=auth_stack.project.env_file)
    assert written.returncode == 0, written.stderr
    folder = _written_backup(written.stdout)
    assert (folder / "auth.dump").read_bytes()[:5] == b"PGDMP"
    reset = invoke("reset", "--yes", check=False, env_file=auth_stack.project.env_file)
    assert reset.returncode == 0, reset.stderr
    search = f"{url}/api/2.0/mlflow/experiments/search"
    assert (
        requests.get(search, params={"max_results": 1}, auth=student, timeout=30, verify=auth_stack.verify).status_code
        == 401
    )  # gone

    # An empty stack: no --yes needed.
    restored = invoke("restore", str(folder), check=False, env_file=auth_stack.project.env_file)
    assert restored.returncode == 0, restored.stdout + restored.stderr

    assert (
        requests.get(search, params={"max_results": 1}, auth=student, timeout=30, verify=auth_stack.verify).status_code
        == 200
    )
    # Others' work is READ for a student here (MLFLOW_DEFAULT_PERMISSION): renaming is allowed only by the
    # MANAGE permission on their own experiment that MLflow granted at its creation, and the restore kept.
    renamed = requests.post(f"{url}/api/2.0/mlflow/experiments/update", auth=student, timeout=30,
                            verify=auth_stack.verify,
                            json={"experiment_id": experiment_id, "new_name": f"renamed-{name}"})  # fmt: skip
    assert renamed.status_code == 200, renamed.text
    assert (
        requests.get(
            search, params={"max_results": 1}, auth=auth_stack.admin, timeout=30, verify=auth_stack.verify
        ).status_code
        == 200
    )
