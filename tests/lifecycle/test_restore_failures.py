"""A restore that fails half-way leaves the stack exactly as it was, MLflow running on the old data."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.lifecycle.helpers import Invoke, bucket_objects, experiment_names, log_runs
from trackstack import backups, database, engine
from trackstack.backup_format import BackupError
from trackstack.project import Project
from trackstack.storage import MinioBucket, minio_client
from trackstack.targets.compose.backup import ComposeData


def _snapshot(project: Project) -> tuple[Any, ...]:
    """Everything a restore may change: experiments, runs, every object's bytes, the databases."""
    databases = database.psql(project, "SELECT datname FROM pg_database ORDER BY 1;\n", database="postgres")
    return experiment_names(project), backups.counts(ComposeData(project)), bucket_objects(project), databases.split()


@pytest.fixture(scope="module")
def backup_folder(project: Project, invoke: Invoke, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A backup of two runs; afterwards the stack gets a run, an overwritten and a lost object more."""
    tmp = tmp_path_factory.mktemp("restore-failures")
    log_runs(project, tmp, count=2)
    result = invoke("backup", "--into", str(tmp / "backups"))
    match = re.search(r"backup written to (\S+)", result.stdout)
    assert match, result.stdout
    log_runs(project, tmp, count=1)
    client = minio_client(project.settings)
    bucket = project.settings.mlflow_bucket
    keys = sorted(obj.object_name for obj in client.list_objects(bucket, recursive=True))
    client.remove_object(bucket, keys[0])  # the backup would bring it back
    changed = tmp / "changed"
    changed.write_bytes(b"changed since the backup")
    client.fput_object(bucket, keys[1], str(changed))  # the backup would overwrite it
    return Path(match[1])


def test_backups_are_private(backup_folder: Path) -> None:
    modes = {path.stat().st_mode & 0o777 for path in [backup_folder, *backup_folder.rglob("*")] if path.is_dir()}
    assert modes == {0o700}
    assert {path.stat().st_mode & 0o777 for path in backup_folder.rglob("*") if path.is_file()} == {0o600}


def test_a_dump_that_passes_its_checksum_but_fails_to_load_changes_nothing(
    project: Project, invoke: Invoke, backup_folder: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(backup_folder, broken)
    dump = broken / "postgres.dump"
    data = dump.read_bytes()
    dump.write_bytes(data[: len(data) // 2])  # a valid header, then the data stops
    manifest = json.loads((broken / "manifest.json").read_text())
    manifest["files"]["postgres.dump"] = {"sha256": hashlib.sha256(dump.read_bytes()).hexdigest(),
                                          "bytes": dump.stat().st_size}  # fmt: skip
    (broken / "manifest.json").write_text(json.dumps(manifest))
    before = _snapshot(project)

    result = invoke("restore", "--yes", str(broken), check=False)

    assert result.returncode == 1
    first = result.stderr.splitlines()[0]
    assert first.startswith("trackstack: error: restore failed; the stack is as it was before"), result.stderr
    assert "Traceback" not in result.stderr
    assert _snapshot(project) == before


def test_minio_stopped_half_way_through_a_restore_changes_nothing(
    project: Project, backup_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploaded: list[str] = []
    real_upload = MinioBucket.upload

    def upload_then_stop_minio(bucket: MinioBucket, key: str, path: str) -> None:
        real_upload(bucket, key, path)
        uploaded.append(key)
        if len(uploaded) == 1:
            engine.compose(project, "stop", "minio", capture=True)

    monkeypatch.setattr(MinioBucket, "upload", upload_then_stop_minio)
    before = _snapshot(project)

    with pytest.raises(BackupError, match="the stack is as it was before") as info:
        backups.restore(ComposeData(project), backup_folder, yes=True)

    assert "MinIO did not answer" in str(info.value)
    assert _snapshot(project) == before
