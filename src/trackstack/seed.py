"""What students used to click by hand: the artifact bucket and pgAdmin's server entry.

Both steps are idempotent: seeding a seeded stack changes nothing, and seeding after the
Postgres credentials changed replaces the stale entry and passfile.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from trackstack import engine
from trackstack.engine import Project
from trackstack.render import PGADMIN_SERVER_NAME, PGPASS_NAME, render_pgpass, render_servers_json
from trackstack.settings import Settings

# Paths inside the pgAdmin image (dpage/pgadmin4): its Python, its setup script, its data.
PGADMIN_PYTHON = "/venv/bin/python3"
PGADMIN_SETUP = "/pgadmin4/setup.py"
PGADMIN_STORAGE = "/var/lib/pgadmin/storage"
SERVERS_FILE = "/var/lib/pgadmin/trackstack-servers.json"


def minio_client(settings: Settings) -> Any:
    """An S3 client for the published MinIO API (imported lazily: `invoke --list` stays fast)."""
    from minio import Minio

    return Minio(
        f"{settings.host}:{settings.ports['MINIO_API_PORT']}",
        access_key=settings.minio_root_user,
        secret_key=settings.minio_root_password.get_secret_value(),
        secure=False,
    )


def seed_bucket(settings: Settings) -> bool:
    """Make sure MLflow's artifact bucket exists; return True when it had to be created."""
    from minio.error import S3Error

    client = minio_client(settings)
    if client.bucket_exists(settings.mlflow_bucket):
        return False
    try:
        client.make_bucket(settings.mlflow_bucket)
    except S3Error as error:  # a concurrent seed won the race: fine
        if error.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
        return False
    return True


def pgadmin_storage_dir(email: str) -> str:
    """The pgAdmin user's storage folder, named the way pgAdmin names it in server mode."""
    name = email
    if not name or name[0].isdigit():
        name = "pga_user_" + name
    name = name.replace("@", "_").replace("/", "slash").replace("\\", "slash")
    return f"{PGADMIN_STORAGE}/{name}"


def _pgadmin_exec(project: Project, script: str, *args: str, input_text: str | None = None) -> str:
    """Run a POSIX shell script in the pgAdmin container; data goes through stdin, not argv."""
    result = engine.compose(
        project, "exec", "-T", "pgadmin", "sh", "-c", script, "sh", *args, capture=True, input_text=input_text
    )
    return result.stdout


def registered_servers(project: Project) -> list[dict[str, Any]]:
    """The servers pgAdmin has for the `.env` login, as `setup.py dump-servers` exports them."""
    email = project.settings.pgadmin_default_email
    out = _pgadmin_exec(
        project,
        f'{PGADMIN_PYTHON} {PGADMIN_SETUP} dump-servers "$1" --user "$2" >/dev/null && cat "$1" && rm -f "$1"',
        f"{SERVERS_FILE}.dump",
        email,
    )
    start = out.find("{")
    if start < 0:
        return []
    servers = json.loads(out[start:]).get("Servers", {})
    return list(servers.values())


def _matches(entry: dict[str, Any], wanted: dict[str, Any]) -> bool:
    keys = ("Name", "Group", "Host", "Port", "MaintenanceDB", "Username")
    if any(entry.get(key) != wanted.get(key) for key in keys):
        return False
    params = entry.get("ConnectionParameters", {})
    return bool(params.get("passfile") == wanted["ConnectionParameters"]["passfile"])


def seed_pgadmin(project: Project) -> str:
    """Register the server `localhost` (host `postgres`) with a passfile; return what was done."""
    settings = project.settings
    storage = pgadmin_storage_dir(settings.pgadmin_default_email)
    # The passfile is rewritten every time, so a changed password never goes stale.
    _pgadmin_exec(
        project,
        'umask 077 && mkdir -p "$1" && cat > "$1/$2" && chmod 600 "$1/$2"',
        storage,
        PGPASS_NAME,
        input_text=render_pgpass(settings),
    )
    wanted = json.loads(render_servers_json(settings))["Servers"]["1"]
    current = registered_servers(project)
    ours = [entry for entry in current if entry.get("Name") == PGADMIN_SERVER_NAME]
    if len(ours) == 1 and _matches(ours[0], wanted):
        return "pgAdmin already lists the server localhost"
    # Replace only our entry: keep any server a student added by hand.
    others = [entry for entry in current if entry.get("Name") != PGADMIN_SERVER_NAME]
    servers = {str(index): entry for index, entry in enumerate([wanted, *others], start=1)}
    _pgadmin_exec(
        project,
        'cat > "$1" && ' + f'{PGADMIN_PYTHON} {PGADMIN_SETUP} load-servers "$1" --user "$2" --replace'
        ' >/dev/null; status=$?; rm -f "$1"; exit $status',
        SERVERS_FILE,
        settings.pgadmin_default_email,
        input_text=json.dumps({"Servers": servers}, indent=2),
    )
    verb = "updated" if ours else "registered"
    return f"pgAdmin: {verb} server localhost (host postgres, user {shlex.quote(settings.postgres_user)})"


def seed(project: Project) -> list[str]:
    """Everything `invoke seed` does, in order; returns one line per step."""
    created = seed_bucket(project.settings)
    bucket = project.settings.mlflow_bucket
    lines = [f"MinIO: created bucket {bucket}" if created else f"MinIO: bucket {bucket} already exists"]
    lines.append(seed_pgadmin(project))
    return lines
