"""What students used to click by hand: the artifact bucket and pgAdmin's server entry.

pgAdmin loads its entry by itself on first start (the image reads the servers file that the
compose file provides); seeding only checks it, cheaply, and repairs it when it differs
(a renamed POSTGRES_USER, an entry deleted by hand, a volume from an older trackstack).
Both steps are idempotent: seeding a seeded stack changes nothing.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from trackstack import database, engine, privileges
from trackstack.containers import PGADMIN_PYTHON, PGADMIN_SERVER_NAME, render_servers_json
from trackstack.engine import DockerError
from trackstack.project import Project
from trackstack.settings import Settings
from trackstack.storage import minio_client

# Paths inside the pgAdmin image (dpage/pgadmin4): its setup script, its data.
PGADMIN_SETUP = "/pgadmin4/setup.py"
PGADMIN_STORAGE = "/var/lib/pgadmin/storage"
PGADMIN_DB = "/var/lib/pgadmin/pgadmin4.db"
SERVERS_FILE = "/var/lib/pgadmin/trackstack-servers.json"
# The fields of a server entry that trackstack owns, as servers.json names them.
ENTRY_FIELDS = ("Name", "Group", "Host", "Port", "MaintenanceDB", "Username", "PasswordExecCommand")
# Read pgAdmin's own configuration database, read-only: a fraction of a second, where its
# `setup.py dump-servers` loads all of pgAdmin (seconds of CPU).
_LIST_SERVERS = """
import json, sqlite3, sys
db = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True)
rows = db.execute(
    'SELECT s.name, g.name, s.host, s.port, s.maintenance_db, s.username, s.passexec_cmd'
    ' FROM server s JOIN "user" u ON s.user_id = u.id JOIN servergroup g ON s.servergroup_id = g.id'
    ' WHERE lower(u.email) = lower(?)', (sys.argv[2],)).fetchall()
print(json.dumps(rows))
"""


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


def entries_in_config_db(project: Project) -> list[dict[str, Any]] | None:
    """Our fields of every server of the `.env` login, read from pgAdmin's database; None if unreadable."""
    try:
        out = _pgadmin_exec(
            project,
            f'{PGADMIN_PYTHON} -c "$1" "$2" "$3"',
            _LIST_SERVERS,
            PGADMIN_DB,
            project.settings.pgadmin_default_email,
        )
        rows = json.loads(out)
    except (DockerError, ValueError):
        return None  # an older or newer pgAdmin schema: fall back to its own export
    return [dict(zip(ENTRY_FIELDS, row, strict=True)) for row in rows]


def wanted_entry(settings: Settings) -> dict[str, Any]:
    entry: dict[str, Any] = json.loads(render_servers_json(settings))["Servers"]["1"]
    return entry


def _ours_is_current(entries: list[dict[str, Any]], wanted: dict[str, Any]) -> bool:
    ours = [entry for entry in entries if entry.get("Name") == PGADMIN_SERVER_NAME]
    return len(ours) == 1 and all(ours[0].get(key) == wanted.get(key) for key in ENTRY_FIELDS)


def seed_pgadmin(project: Project, listed: list[dict[str, Any]] | None = None) -> str:
    """Make sure pgAdmin lists the server `localhost` (host `postgres`) as the servers file says.

    `listed`: what `entries_in_config_db` returned a moment ago, if the caller already asked.
    """
    settings = project.settings
    wanted = wanted_entry(settings)
    quick = entries_in_config_db(project) if listed is None else listed
    if quick is not None and _ours_is_current(quick, wanted):
        return "pgAdmin already lists the server localhost"
    current = registered_servers(project)
    if _ours_is_current(current, wanted):
        return "pgAdmin already lists the server localhost"
    ours = [entry for entry in current if entry.get("Name") == PGADMIN_SERVER_NAME]
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


def bucket_line(settings: Settings) -> str:
    created = seed_bucket(settings)
    bucket = settings.mlflow_bucket
    store = settings.store.product
    return f"{store}: created bucket {bucket}" if created else f"{store}: bucket {bucket} already exists"


def grant_database(project: Project) -> str:
    """MLflow's own role, owning its databases and everything in them (privileges.py); as the superuser,
    over the container's socket, the password on psql's stdin. Before MLflow starts, on every `up`."""
    settings = project.settings
    database.psql(project, privileges.role_script(settings))
    return f"Postgres: MLflow's role {settings.mlflow_db_user} owns {' and '.join(settings.mlflow_databases)}"


def grant_store(project: Project) -> str:
    """MLflow's own S3 user, allowed MLFLOW_BUCKET's objects only; made again (its key from .env) every `up`."""
    settings = project.settings
    user = settings.mlflow_s3_access_key
    if settings.artifact_store == "seaweedfs":
        engine.compose(project, "exec", "-T", "minio", *privileges.WEED_SHELL, capture=True,
                       input_text=privileges.seaweedfs_configure(settings))  # fmt: skip
    else:
        from minio.credentials.providers import StaticProvider
        from minio.minioadmin import MinioAdmin

        admin = MinioAdmin(
            endpoint=f"{settings.host}:{settings.ports['MINIO_API_PORT']}",
            credentials=StaticProvider(settings.minio_root_user, settings.minio_root_password.get_secret_value()),
            secure=False,
        )
        admin.user_add(user, settings.mlflow_s3_secret_key.get_secret_value())
        admin.policy_add(
            privileges.bucket_policy_name(settings), policy=privileges.bucket_policy(settings.mlflow_bucket)
        )
        admin.policy_set(privileges.bucket_policy_name(settings), user=user)
    return f"{settings.store.product}: MLflow's user {user} may use bucket {settings.mlflow_bucket} only"


def seed(project: Project) -> list[str]:
    """Everything `invoke seed` does, in order; returns one line per step."""
    return [bucket_line(project.settings), seed_pgadmin(project)]
