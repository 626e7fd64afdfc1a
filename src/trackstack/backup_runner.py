"""The scheduled backup, as the orchestrator runs it (`python3 -m trackstack.backup_runner loop|once|health`).

It runs in the backup image (templates/Dockerfile.backup.j2: the stack's own Postgres image, so
pg_dump is the server's version, with Debian's python3, boto3 and croniter) and reaches the stack
as MLflow does: Postgres at `postgres`, the bucket at `http://minio:9000`. One run writes a backup
in `backup_format`'s layout to BACKUP_DEST under its UTC time, reads it back and checks every
checksum, marks it verified, and only then deletes what retention no longer keeps.

It imports only the standard library, boto3, croniter and trackstack's modules that do the same;
its settings come from the environment the orchestrator gives it (each target's template),
secrets from `*_FILE` files where the orchestrator has secrets.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from trackstack import schedule
from trackstack.backup_dest import (
    Destination,
    DirectoryDestination,
    S3Credentials,
    environment_secret,
    open_destination,
    s3_client,
    stamp,
    to_delete,
    verify_stored,
)
from trackstack.backup_format import (
    ARTIFACTS,
    AUTH_DUMP,
    DUMP,
    DUMP_OPTIONS,
    RUNS_SQL,
    private_file,
    safe_key_path,
    write_manifest,
)

HEARTBEAT = schedule.heartbeat_file("backup")


@dataclass(frozen=True)
class RunnerConfig:
    """What a run needs, from the environment the orchestrator sets (each target's template)."""

    project: str
    target: str
    mlflow_version: str
    bucket: str
    postgres_host: str
    postgres_user: str
    postgres_db: str
    auth_db: str
    postgres_password: str
    stack_s3: S3Credentials
    schedule: str
    keep: int
    dest: str
    dest_s3: S3Credentials

    # What write_manifest reads (backup_format.StackFacts), under Settings's names.
    @property
    def compose_project_name(self) -> str:
        return self.project

    @property
    def mlflow_bucket(self) -> str:
        return self.bucket

    @classmethod
    def from_environment(cls, env: Mapping[str, str]) -> RunnerConfig:
        return cls(
            project=env["TRACKSTACK_PROJECT"],
            target=env["TRACKSTACK_TARGET"],
            mlflow_version=env["MLFLOW_VERSION"],
            bucket=env["MLFLOW_BUCKET"],
            postgres_host=env.get("POSTGRES_HOST", "postgres"),
            postgres_user=env["POSTGRES_USER"],
            postgres_db=env["POSTGRES_DB"],
            auth_db=env["POSTGRES_AUTH_DB"],
            postgres_password=environment_secret("POSTGRES_PASSWORD", env),
            stack_s3=S3Credentials(
                endpoint=env.get("STACK_S3_ENDPOINT", "http://minio:9000"),
                access_key=env["STACK_S3_ACCESS_KEY"],
                secret_key=environment_secret("STACK_S3_SECRET_KEY", env),
                region="us-east-1",
            ),
            schedule=env.get("BACKUP_SCHEDULE", ""),
            keep=int(env.get("BACKUP_KEEP", "7")),
            dest=env["BACKUP_DEST"],
            dest_s3=S3Credentials(
                endpoint=env.get("BACKUP_S3_ENDPOINT", ""),
                access_key=env.get("BACKUP_S3_ACCESS_KEY", ""),
                secret_key=environment_secret("BACKUP_S3_SECRET_KEY", env),
                region=env.get("BACKUP_S3_REGION", "us-east-1"),
            ),
        )


def say(message: str) -> None:
    print(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} backup: {message}", flush=True)


def _pg_environment(config: RunnerConfig) -> dict[str, str]:
    # The password reaches libpq as PGPASSWORD: never on a command line.
    return {**os.environ, "PGPASSWORD": config.postgres_password, "PGCONNECT_TIMEOUT": "10"}


def pg_dump_args(config: RunnerConfig, database: str) -> list[str]:
    return ["pg_dump", *DUMP_OPTIONS, "-h", config.postgres_host, "-U", config.postgres_user, "-d", database]


def _psql(config: RunnerConfig, database: str, query: str) -> str:
    result = subprocess.run(
        ["psql", "--no-psqlrc", "-tA", "-v", "ON_ERROR_STOP=1", "-h", config.postgres_host,
         "-U", config.postgres_user, "-d", database, "-c", query],
        env=_pg_environment(config), capture_output=True, text=True, check=True,
    )  # fmt: skip
    return result.stdout.strip()


def database_exists(config: RunnerConfig, database: str) -> bool:
    query = "SELECT 1 FROM pg_database WHERE datname = '" + database.replace("'", "''") + "'"  # noqa: S608
    return _psql(config, "postgres", query) == "1"


def run_count(config: RunnerConfig) -> int:
    return int(_psql(config, config.postgres_db, RUNS_SQL) or 0)


def write_backup(config: RunnerConfig, folder: Path, name: str) -> None:
    """Dumps, objects and manifest into `folder` (backup_format's layout)."""
    with_logins = database_exists(config, config.auth_db)
    runs = run_count(config)  # before the dump: at most what the dump holds
    dumps = [(config.postgres_db, DUMP)] + ([(config.auth_db, AUTH_DUMP)] if with_logins else [])
    for database, file in dumps:
        say(f"dumping database {database}")
        with private_file(folder / file) as out:
            subprocess.run(pg_dump_args(config, database), env=_pg_environment(config), stdout=out, check=True)
    (folder / ARTIFACTS).mkdir(mode=0o700, exist_ok=True)
    client = s3_client(config.stack_s3)
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=config.bucket):
        keys += [item["Key"] for item in page.get("Contents", [])]
    say(f"copying {len(keys)} objects of bucket {config.bucket}")
    for key in sorted(keys):
        path = safe_key_path(folder / ARTIFACTS, key)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        client.download_file(config.bucket, key, str(path))
    write_manifest(folder, config, stamp=name, target=config.target, keys=sorted(keys),
                   auth_database=config.auth_db if with_logins else None, runs=runs)  # fmt: skip


def _owned_like_destination(destination: Destination, folder: Path) -> None:
    """Running as root into a directory: the files get the directory's owner, so that its user (on the
    host, `invoke backups` and `invoke restore`) can read what only their owner may read."""
    if sys.platform == "win32" or not isinstance(destination, DirectoryDestination) or os.geteuid() != 0:
        return  # (it runs in a Linux container; the check is for mypy's other platforms)
    owner = destination.root.stat()
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, owner.st_uid, owner.st_gid)


def run_once(config: RunnerConfig, destination: Destination, now: datetime | None = None) -> str:
    """One scheduled backup: write, read back and verify, mark verified, then apply retention."""
    name = stamp(now or datetime.now(UTC))
    started = time.monotonic()
    with destination.staging(name) as folder:
        write_backup(config, folder, name)
        _owned_like_destination(destination, folder)
    with tempfile.TemporaryDirectory(prefix="trackstack-verify-") as scratch:
        verify_stored(destination, name, Path(scratch))
    destination.mark_verified(name, datetime.now(UTC))
    say(f"backup {name} written and verified at {destination.where} in {time.monotonic() - started:.0f}s")
    for old in to_delete(destination.entries(), config.keep):
        destination.delete(old.name)
        say(f"deleted {old.name} ({'verified' if old.verified else 'never verified'}; BACKUP_KEEP={config.keep})")
    return name


def loop(config: RunnerConfig) -> None:
    """Sleep until the schedule's next time, back up, and again; a failed run is logged, the next one comes."""
    schedule.start_heartbeat(HEARTBEAT)
    destination = open_destination(config.dest, config.dest_s3)
    say(f"schedule {config.schedule!r} (UTC), keeping {config.keep} verified backups at {destination.where}")

    def back_up(due: datetime) -> None:
        try:
            run_once(config, destination, due)
        except Exception as error:  # the service stays up for the next time; status and doctor see the gap
            say(f"backup failed: {type(error).__name__}: {error}")

    schedule.run_on_schedule(config.schedule, back_up, what="backup", say=say)


def healthy(now: float | None = None) -> bool:
    """The process beats: its heartbeat file is younger than schedule.HEARTBEAT_STALE seconds."""
    return schedule.beating(HEARTBEAT, now)


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "loop"
    if command == "health":
        return 0 if healthy() else 1
    config = RunnerConfig.from_environment(os.environ)
    if command == "once":
        try:
            run_once(config, open_destination(config.dest, config.dest_s3))
        except Exception as error:
            say(f"backup failed: {type(error).__name__}: {error}")
            return 1
        return 0
    if command == "loop":
        loop(config)
        return 0
    print(f"usage: {argv[0]} loop|once|health", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
