"""Every MinIO, Docker, manifest and concurrency failure ends in one `trackstack: error:` line with its fix."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from invoke.context import Context
from invoke.exceptions import Exit
from minio.error import S3Error
from urllib3.exceptions import MaxRetryError, NewConnectionError

from trackstack.backup_format import BackupError, check_compatible, verify
from trackstack.engine import DockerError, run
from trackstack.settings import Settings
from trackstack.storage import StorageError, minio_errors
from trackstack.task_lock import BusyError, project_lock
from trackstack.tasks import reports_errors


def _s3(code: str) -> S3Error:
    return S3Error(None, code, f"{code} happened", "/mlflow", "req", "host", bucket_name="mlflow")  # type: ignore[arg-type]


def _refused() -> MaxRetryError:
    cause = NewConnectionError(None, "Failed to establish a new connection: [Errno 111] Connection refused")  # type: ignore[arg-type]
    return MaxRetryError(None, "/mlflow", cause)  # type: ignore[arg-type]


def _fails_with(error: BaseException) -> Any:
    @reports_errors
    def task(c: Context) -> None:
        raise error

    return task


# (what goes wrong, what the one line must say)
FAILURES = [
    (_s3("SignatureDoesNotMatch"), ["MinIO refused the credentials", "MINIO_ROOT_PASSWORD", "Fix: run `invoke up`"]),
    (_s3("InvalidAccessKeyId"), ["MinIO refused the credentials", "MINIO_ROOT_USER", "Fix:"]),
    (_s3("NoSuchBucket"), ["no bucket mlflow (MLFLOW_BUCKET)", "Fix: run `invoke seed`"]),
    (_s3("InternalError"), ["MinIO answered InternalError", "Fix: `invoke logs --service minio`"]),
    (_refused(), ["MinIO did not answer", "Fix: run `invoke up`"]),
    (ConnectionRefusedError(111, "Connection refused"), ["MinIO did not answer", "Fix:"]),
    (DockerError("`docker compose exec` failed (exit 1). Fix: x"), ["`docker compose exec` failed", "Fix:"]),
    (BusyError("`invoke up` (pid 1) is still running. Fix: wait"), ["still running", "Fix: wait"]),
]


@pytest.mark.parametrize(("error", "expected"), FAILURES, ids=lambda value: type(value).__name__)
def test_a_failure_is_one_error_line_with_its_fix(
    error: BaseException, expected: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(Exit) as exit_info:
        _fails_with(error)(Context())
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert first.startswith("trackstack: error: ")
    assert "Traceback" not in err
    for words in expected:
        assert words in first, (words, first)


def test_minio_errors_names_the_action_and_keeps_other_errors() -> None:
    with pytest.raises(StorageError, match="while copying things"), minio_errors("copying things"):
        raise _s3("AccessDenied")
    with pytest.raises(KeyError), minio_errors("copying things"):
        raise KeyError("not MinIO's")


# (what the command said on stderr, the fix the first line must give)
DOCKER_FAILURES = [
    ("Cannot connect to the Docker daemon at unix:///var/run/docker.sock", "Fix: start Docker"),
    ('service "postgres" is not running', "Fix: run `invoke up`"),
    ("something else went wrong", "Fix: `invoke status`"),
]


@pytest.mark.parametrize(("stderr", "fix"), DOCKER_FAILURES)
def test_a_failing_command_names_itself_and_a_fix_on_its_first_line(stderr: str, fix: str) -> None:
    with pytest.raises(DockerError) as info:
        run(["sh", "-c", f"echo '{stderr}' >&2; exit 3"], capture=True)
    first, _, detail = str(info.value).partition("\n")
    assert first.startswith("`sh -c")
    assert "failed (exit 3)" in first
    assert fix in first
    assert stderr in detail


def _manifest(folder: Path, **overrides: Any) -> Path:
    dump = b"PGDMP..."
    (folder / "postgres.dump").write_bytes(dump)
    manifest = {
        "format": 1,
        "mlflow_version": "3.8.1",
        "bucket": "mlflow",
        "database": "mlflow",
        "files": {"postgres.dump": {"sha256": hashlib.sha256(dump).hexdigest(), "bytes": len(dump)}},
    } | overrides
    (folder / "manifest.json").write_text(json.dumps(manifest) if overrides.get("raw") is None else overrides["raw"])
    return folder


# (manifest fields that are wrong, what the message says)
MALFORMED = [
    ({"raw": "{not json"}, "is unreadable (JSONDecodeError)"),
    ({"raw": "[1, 2]"}, "not a JSON object"),
    ({"format": 3}, "its format is 3, not one of 1, 2"),
    ({"bucket": None}, "'bucket' is missing"),
    ({"mlflow_version": "latest"}, "not a release number"),
    ({"files": []}, "'files' is missing"),
    ({"files": {"postgres.dump": {"sha256": "x"}}}, "lacks a sha256 and a byte count"),
]


@pytest.mark.parametrize(("overrides", "message"), MALFORMED)
def test_a_malformed_manifest_is_one_message_not_a_traceback(
    tmp_path: Path, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(BackupError) as info:
        verify(_manifest(tmp_path, **overrides))
    assert message in str(info.value)
    assert "nothing was restored. Fix:" in str(info.value)


# (manifest, refused with)
INCOMPATIBLE = [
    ({"bucket": "other", "mlflow_version": "3.8.1"}, "Fix: set MLFLOW_BUCKET=other"),
    ({"bucket": "mlflow", "mlflow_version": "3.19.0"}, "Fix: set MLFLOW_VERSION=3.19.0"),
    ({"bucket": "mlflow", "mlflow_version": "4.0.0"}, "newer than this stack's 3.18.0"),
]


@pytest.mark.parametrize(("manifest", "message"), INCOMPATIBLE)
def test_a_backup_of_another_bucket_or_a_newer_mlflow_is_refused(
    settings: Settings, manifest: dict[str, str], message: str
) -> None:
    with pytest.raises(BackupError, match="nothing was restored") as info:
        check_compatible(manifest, settings)
    assert message in str(info.value)


def test_a_backup_of_an_older_mlflow_is_accepted(settings: Settings) -> None:
    check_compatible({"bucket": "mlflow", "mlflow_version": "3.5.0"}, settings)


def test_a_second_task_waits_for_the_first_and_says_so(tmp_path: Path) -> None:
    said: list[str] = []
    order: list[str] = []
    with project_lock(tmp_path, "up"):

        def second() -> None:
            with project_lock(tmp_path, "restore", poll=0.01, say=said.append):
                order.append("second")

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.2)
        order.append("first done")
    thread.join(5)
    assert order == ["first done", "second"]
    assert said == [f"waiting for `invoke up` (pid {__import__('os').getpid()}) to finish before `invoke restore`"]


def test_a_second_task_gives_up_with_a_clear_message(tmp_path: Path) -> None:
    busy = pytest.raises(BusyError, match=r"`invoke up` \(pid \d+\) is still running")
    with project_lock(tmp_path, "up"), busy, project_lock(tmp_path, "reset", timeout=0.05, poll=0.01, say=print):
        pass


def test_two_writers_of_one_generated_file_never_trip_over_each_other(tmp_path: Path) -> None:
    from trackstack.console import _write_atomically

    target = tmp_path / "compose.yaml"
    errors: list[BaseException] = []

    def write(text: str) -> None:
        try:
            for _ in range(200):
                _write_atomically(target, text)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=write, args=(text,)) for text in ("a\n", "b\n")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert target.read_text() in ("a\n", "b\n")
    assert [p.name for p in tmp_path.iterdir()] == ["compose.yaml"]
