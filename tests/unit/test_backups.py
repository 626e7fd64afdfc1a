"""The backup and restore steps every target shares, against a stack in memory (tests/unit/fake_stack.py):
the logins database in the backup and back, old backups, all or nothing, and the confirmation."""

from __future__ import annotations

import json
import shutil
from contextlib import nullcontext
from pathlib import Path

import pytest

from tests.unit.fake_stack import FakeBucket, FakeStack
from trackstack import backups
from trackstack.backup_format import AUTH_DUMP, FORMAT, BackupError, verify
from trackstack.errors import TrackstackError
from trackstack.settings import Settings
from trackstack.validation import validate


@pytest.fixture
def auth_settings(values: dict[str, str]) -> Settings:
    return validate(values | {"MLFLOW_AUTH": "true"})


def stack_with_logins(settings: Settings) -> FakeStack:
    return FakeStack(
        settings,
        databases={"postgres": "", settings.postgres_db: "runs v1", settings.mlflow_auth_db: "users: admin, ann"},
        objects={"1/a/artifacts/model.bin": b"weights", "1/b/artifacts/notes.txt": b"notes"},
        runs=2,
    )


def test_a_backup_of_a_stack_with_logins_holds_the_logins_database_in_its_manifest(
    auth_settings: Settings, tmp_path: Path
) -> None:
    stack = stack_with_logins(auth_settings)
    folder = backups.backup(stack, tmp_path / "backups")
    manifest = verify(folder)
    assert manifest["format"] == FORMAT == 2
    assert manifest["auth_database"] == auth_settings.mlflow_auth_db
    assert manifest["target"] == "fake"
    assert set(manifest["files"]) == {"postgres.dump", AUTH_DUMP, "artifacts/1/a/artifacts/model.bin",
                                      "artifacts/1/b/artifacts/notes.txt"}  # fmt: skip
    assert (folder / AUTH_DUMP).read_bytes() == b"PGDMP users: admin, ann"
    assert {p.stat().st_mode & 0o777 for p in folder.rglob("*") if p.is_file()} == {0o600}
    assert not list((tmp_path / "backups").glob(".*partial"))


def test_a_stack_that_never_had_logins_has_no_logins_dump(settings: Settings, tmp_path: Path) -> None:
    stack = FakeStack(settings, databases={"postgres": "", settings.postgres_db: "runs"})
    manifest = verify(backups.backup(stack, tmp_path))
    assert set(manifest["files"]) == {"postgres.dump"}
    assert "auth_database" not in manifest


def test_a_failed_backup_leaves_no_folder(auth_settings: Settings, tmp_path: Path) -> None:
    stack = stack_with_logins(auth_settings)
    bucket = FakeBucket(stack.objects)

    def lost(key: str, path: str) -> None:
        raise OSError("disk full")

    bucket.download = lost  # type: ignore[method-assign]
    stack.bucket = lambda: nullcontext(bucket)  # type: ignore[method-assign, assignment, return-value]
    with pytest.raises(OSError, match="disk full"):
        backups.backup(stack, tmp_path / "backups")
    assert list((tmp_path / "backups").iterdir()) == []


def test_restore_brings_back_the_logins_with_the_runs_and_objects_all_at_once(
    auth_settings: Settings, tmp_path: Path
) -> None:
    stack = stack_with_logins(auth_settings)
    folder = backups.backup(stack, tmp_path)
    db, logins = auth_settings.postgres_db, auth_settings.mlflow_auth_db
    stack.databases |= {db: "runs v2", logins: "users: admin"}  # `reset` and a new term
    stack.objects["1/a/artifacts/model.bin"] = b"retrained"
    stack.objects["2/c/artifacts/new.txt"] = b"new"

    held = backups.restore(stack, folder, yes=True)

    assert stack.databases == {"postgres": "", db: "runs v1", logins: "users: admin, ann"}
    assert stack.objects == {"1/a/artifacts/model.bin": b"weights", "1/b/artifacts/notes.txt": b"notes"}
    rename = next(e for e in stack.events if e.startswith("rename"))
    assert f"{logins}->" in rename  # one transaction swaps both databases
    assert f"->{logins}" in rename
    assert stack.events == ["stop mlflow", rename, f"after swap {auth_settings.mlflow_version}", "start mlflow"]
    assert held.objects == 2


def test_a_backup_without_logins_restores_and_keeps_the_stacks_logins(auth_settings: Settings, tmp_path: Path) -> None:
    stack = stack_with_logins(auth_settings)
    folder = backups.backup(stack, tmp_path)
    _as_format_1(folder)
    stack.databases[auth_settings.postgres_db] = "runs v2"
    stack.databases[auth_settings.mlflow_auth_db] = "users: admin, bob"
    backups.restore(stack, folder, yes=True)
    assert stack.databases[auth_settings.postgres_db] == "runs v1"
    assert stack.databases[auth_settings.mlflow_auth_db] == "users: admin, bob"


def _as_format_1(folder: Path) -> None:
    """What `invoke backup` wrote before it kept the logins."""
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["format"] = 1
    del manifest["auth_database"], manifest["files"][AUTH_DUMP], manifest["target"]
    (folder / AUTH_DUMP).unlink()
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_logins_restored_into_a_stack_without_logins_wait_there_for_logins_to_be_turned_on(
    auth_settings: Settings, settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = backups.backup(stack_with_logins(auth_settings), tmp_path)
    plain = FakeStack(settings, databases={"postgres": "", settings.postgres_db: ""})
    backups.restore(plain, folder, yes=True)
    assert plain.databases[settings.mlflow_auth_db] == "users: admin, ann"
    assert "MLFLOW_AUTH=false here" in capsys.readouterr().out


def test_a_failure_after_the_swap_puts_both_databases_and_every_object_back(
    auth_settings: Settings, tmp_path: Path
) -> None:
    stack = stack_with_logins(auth_settings)
    folder = backups.backup(stack, tmp_path)
    stack.databases |= {auth_settings.postgres_db: "runs v2", auth_settings.mlflow_auth_db: "users: admin"}
    stack.objects["1/a/artifacts/model.bin"] = b"retrained"
    stack.objects["2/c/artifacts/new.txt"] = b"new"
    stack.runs = 3
    before = (dict(stack.databases), dict(stack.objects))
    stack.fail_after_swap = True

    with pytest.raises(BackupError, match="the stack is as it was before") as info:
        backups.restore(stack, folder, yes=True)

    assert "RuntimeError while preparing the restored data" in str(info.value)
    assert (stack.databases, stack.objects) == before
    assert stack.mlflow_running
    assert stack.events[-1] == "start mlflow"


def test_a_failure_half_way_through_the_upload_changes_nothing(auth_settings: Settings, tmp_path: Path) -> None:
    stack = stack_with_logins(auth_settings)
    folder = backups.backup(stack, tmp_path)
    stack.objects["1/a/artifacts/model.bin"] = b"retrained"
    stack.objects.pop("1/b/artifacts/notes.txt")
    stack.runs = 5
    before = (dict(stack.databases), dict(stack.objects))

    def stop_at_second(key: str) -> None:
        if key == "1/b/artifacts/notes.txt":
            raise ConnectionError("MinIO went away")

    stack.fail_upload = stop_at_second
    with pytest.raises(BackupError, match="MinIO did not answer"):
        backups.restore(stack, folder, yes=True)
    assert (stack.databases, stack.objects) == before
    assert not [e for e in stack.events if e.startswith("rename")]


def test_a_stack_with_data_is_replaced_only_after_a_yes(
    auth_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = stack_with_logins(auth_settings)
    folder = backups.backup(stack, tmp_path)
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    with pytest.raises(TrackstackError, match="Fix: pass --yes"):
        backups.restore(stack, folder, yes=False)
    monkeypatch.setattr("sys.stdin.isatty", lambda: True)
    with pytest.raises(TrackstackError, match="restore cancelled"):
        backups.restore(stack, folder, yes=False, ask=lambda prompt: "no")
    assert stack.events == []
    backups.restore(stack, folder, yes=False, ask=lambda prompt: auth_settings.compose_project_name)
    assert "start mlflow" in stack.events


def test_an_empty_stack_is_restored_without_asking(auth_settings: Settings, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    folder = backups.backup(stack_with_logins(auth_settings), tmp_path)
    empty = FakeStack(auth_settings, databases={"postgres": "", auth_settings.postgres_db: ""})
    monkeypatch.setattr("sys.stdin.isatty", lambda: False)
    backups.restore(empty, folder, yes=False)
    assert empty.objects.keys() == {"1/a/artifacts/model.bin", "1/b/artifacts/notes.txt"}


def test_a_corrupt_logins_dump_is_refused_before_anything_changes(auth_settings: Settings, tmp_path: Path) -> None:
    stack = stack_with_logins(auth_settings)
    folder = backups.backup(stack, tmp_path / "ok")
    corrupt = tmp_path / "corrupt"
    shutil.copytree(folder, corrupt)
    (corrupt / AUTH_DUMP).write_bytes(b"PGDMP users: mallory")
    with pytest.raises(BackupError, match=r"auth\.dump: checksum mismatch"):
        backups.restore(stack, corrupt, yes=True)
    assert stack.events == []
