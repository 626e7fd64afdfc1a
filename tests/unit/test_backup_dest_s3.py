"""An s3:// BACKUP_DEST against a real S3 server: the test bed's cached MinIO binary, on loopback.

Skipped where the binary is absent (it is the swarm bed's, tests/swarm/testbed.sh): no Docker needed.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.unit.test_scheduled_backups import fake_backup
from trackstack.backup_dest import S3Credentials, S3Destination, S3Location, s3_client, to_delete, verify_stored
from trackstack.backup_format import BackupError

MINIO = Path("/var/cache/trackstack-testbed/bin/minio")
pytestmark = pytest.mark.skipif(not MINIO.is_file(), reason=f"no MinIO binary at {MINIO}")
USER, PASSWORD = "backup-test", "backup-test-secret"
NOW = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def credentials(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Credentials]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = tmp_path_factory.mktemp("minio")
    env = {"MINIO_ROOT_USER": USER, "MINIO_ROOT_PASSWORD": PASSWORD, "HOME": str(data), "PATH": "/usr/bin:/bin"}
    server = subprocess.Popen(
        [str(MINIO), "server", "--quiet", "--address", f"127.0.0.1:{port}", "--console-address", "127.0.0.1:0",
         str(data / "store")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.2)
        found = S3Credentials(f"http://127.0.0.1:{port}", USER, PASSWORD, "us-east-1")
        client = s3_client(found)
        for _ in range(50):  # MinIO accepts connections a moment before it serves requests
            try:
                client.create_bucket(Bucket="class-backups")
                break
            except Exception:
                time.sleep(0.2)
        yield found
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_bucket_holds_verified_backups_reads_them_back_and_keeps_the_newest(
    credentials: S3Credentials, tmp_path: Path
) -> None:
    destination = S3Destination(S3Location.parse("s3://class-backups/term/one"), credentials)
    for hour in (1, 2, 3):
        name = NOW.replace(hour=hour).strftime("%Y%m%dT%H%M%SZ")
        with destination.staging(name) as folder:
            fake_backup(folder, name)
        verify_stored(destination, name, tmp_path / name)
        destination.mark_verified(name, NOW)
    assert [e.name for e in destination.entries()] == ["20261207T030000Z", "20261207T020000Z", "20261207T010000Z"]
    assert all(e.verified and e.bytes == 9 for e in destination.entries())
    for old in to_delete(destination.entries(), 2):
        destination.delete(old.name)
    assert [e.name for e in destination.entries()] == ["20261207T030000Z", "20261207T020000Z"]
    fetched = destination.fetch("20261207T030000Z", tmp_path / "again")
    assert (fetched / "artifacts" / "1" / "model.pkl").read_bytes() == b"model"
    assert not (fetched / "verified.json").exists()


def test_an_altered_object_fails_the_read_back(credentials: S3Credentials, tmp_path: Path) -> None:
    destination = S3Destination(S3Location.parse("s3://class-backups/term/two"), credentials)
    with destination.staging("20261207T040000Z") as folder:
        fake_backup(folder, "20261207T040000Z")
    destination.client.put_object(Bucket="class-backups", Key="term/two/20261207T040000Z/postgres.dump", Body=b"xx")
    with pytest.raises(BackupError, match="checksum mismatch"):
        verify_stored(destination, "20261207T040000Z", tmp_path)
    assert [e.verified for e in destination.entries()] == [False]
