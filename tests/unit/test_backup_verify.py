from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from trackstack.backup_format import BackupError, safe_key_path, verify


def _write_backup(folder: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    manifest = {
        "format": 1,
        "mlflow_version": "3.8.1",
        "bucket": "mlflow",
        "database": "mlflow",
        "files": {name: {"sha256": hashlib.sha256(d).hexdigest(), "bytes": len(d)} for name, d in files.items()},
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def backup(tmp_path: Path) -> Path:
    _write_backup(tmp_path, {"postgres.dump": b"PGDMP...", "artifacts/1/abc/artifacts/model.txt": b"weights"})
    return tmp_path


def test_a_complete_backup_verifies(backup: Path) -> None:
    assert set(verify(backup)["files"]) == {"postgres.dump", "artifacts/1/abc/artifacts/model.txt"}


def test_a_changed_byte_is_caught(backup: Path) -> None:
    (backup / "artifacts/1/abc/artifacts/model.txt").write_bytes(b"weightZ")
    with pytest.raises(BackupError, match=r"model\.txt: checksum mismatch"):
        verify(backup)


def test_a_missing_file_is_caught(backup: Path) -> None:
    (backup / "postgres.dump").unlink()
    with pytest.raises(BackupError, match=r"postgres\.dump: missing"):
        verify(backup)


def test_no_manifest_means_incomplete(backup: Path) -> None:
    (backup / "manifest.json").unlink()
    with pytest.raises(BackupError, match="incomplete backup"):
        verify(backup)


def test_a_garbled_manifest_is_refused(backup: Path) -> None:
    (backup / "manifest.json").write_text("{not json")
    with pytest.raises(BackupError, match="unreadable"):
        verify(backup)


@pytest.mark.parametrize("key", ["../escape", "a/../../b", "/etc/passwd", ""])
def test_object_keys_cannot_leave_the_backup(tmp_path: Path, key: str) -> None:
    with pytest.raises(BackupError, match="would leave the backup folder"):
        safe_key_path(tmp_path, key)
