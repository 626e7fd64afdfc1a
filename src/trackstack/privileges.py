"""Least privilege, pure: what MLflow's own Postgres role and S3 user may do, as SQL and policies.

MLflow connects as `Settings.mlflow_db_user`, a role without SUPERUSER, CREATEDB or CREATEROLE
that owns MLflow's two databases and every object in them, and to the artifact store as
`Settings.mlflow_s3_access_key`, allowed only object and list actions on MLFLOW_BUCKET. The
superuser and root keys stay with trackstack's own steps, which run these (Compose: `up` and
`restore`; Swarm and Kubernetes: the prepare job, templates/mlflow/prepare.py).

Every statement is idempotent, so every `up`/`deploy` runs them: a stack whose tables the superuser
made (before this existed, or a restore, which loads as the superuser) is moved to the role with
no row touched. Not `REASSIGN OWNED BY <superuser>`: POSTGRES_USER is the image's bootstrap
superuser, whose objects include the system catalogs, and Postgres refuses to reassign those.
"""

from __future__ import annotations

import json
from typing import Any

from trackstack.database import identifier, literal
from trackstack.settings import Settings

# Attributes the role is given on every run, so that a role made by hand is brought back to them.
ROLE_ATTRIBUTES = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"


def create_role_sql(role: str) -> str:
    """Create the role if missing (a DO block: CREATE ROLE has no IF NOT EXISTS) and set its attributes.

    No password here: the caller sets it apart (`role_password_sql`, or a bound parameter), so that
    this text may appear where secrets may not (a job's arguments)."""
    return (
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {literal(role)}) THEN "
        f"CREATE ROLE {identifier(role)}; END IF; END $$;\n"
        f"ALTER ROLE {identifier(role)} WITH {ROLE_ATTRIBUTES};\n"
    )


def role_password_sql(role: str, password: str) -> str:
    """The role's password, as a literal: only ever sent on psql's stdin, never in an argument."""
    return f"ALTER ROLE {identifier(role)} WITH PASSWORD {literal(password)};\n"


def database_owner_sql(role: str, database: str) -> str:
    """Make `role` the owner of `database` if it exists (a DO block: run from any database)."""
    return (
        f"DO $$ BEGIN IF EXISTS (SELECT FROM pg_database WHERE datname = {literal(database)}) THEN "
        f"EXECUTE format('ALTER DATABASE %I OWNER TO %I', {literal(database)}, {literal(role)}); END IF; END $$;\n"
    )


def objects_owner_sql(role: str) -> str:
    """In the database it runs in: give `role` every table, view, sequence and type of schema public.

    Indexes and the sequences of serial or identity columns follow their table (Postgres refuses
    to move such a sequence alone); the row types of tables follow them too, and array types their
    element type. Run in each of MLflow's databases: ownership never crosses databases.
    """
    sql = """DO $$
DECLARE
  item record;
  target regrole := TARGET_ROLE::regrole;
BEGIN
  FOR item IN
    SELECT c.oid::regclass AS name FROM pg_class c
    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      AND c.relowner <> target
      AND NOT EXISTS (SELECT FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                      AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))
  LOOP
    EXECUTE format('ALTER TABLE %s OWNER TO %s', item.name, target);
  END LOOP;
  FOR item IN
    SELECT t.oid::regtype AS name FROM pg_type t
    WHERE t.typnamespace = 'public'::regnamespace AND t.typtype IN ('e', 'd') AND t.typowner <> target
  LOOP
    EXECUTE format('ALTER TYPE %s OWNER TO %s', item.name, target);
  END LOOP;
END $$;
"""
    return sql.replace("TARGET_ROLE", literal(role), 1)


def role_script(settings: Settings) -> str:
    """The psql script (stdin, as the superuser, in the maintenance database) that sets MLflow's role up.

    The logins database is created when MLFLOW_AUTH=true (the role may not create databases);
    `\\connect` moves into each existing database to move its objects.
    """
    role = settings.mlflow_db_user
    script = create_role_sql(role) + role_password_sql(role, settings.mlflow_db_password.get_secret_value())
    if settings.mlflow_auth:
        script += (
            f"SELECT format('CREATE DATABASE %I OWNER %I', {literal(settings.mlflow_auth_db)}, {literal(role)}) "  # noqa: S608
            f"WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = {literal(settings.mlflow_auth_db)})\n\\gexec\n"
        )
    for database in settings.mlflow_databases:
        script += database_owner_sql(role, database)
    for database in settings.mlflow_databases:
        script += (
            f"SELECT EXISTS (SELECT FROM pg_database WHERE datname = {literal(database)}) AS present \\gset\n"  # noqa: S608
            f"\\if :present\n\\connect {identifier(database)}\n{objects_owner_sql(role)}\\endif\n"
        )
    return script


def prepare_plan(settings: Settings) -> str:
    """What the prepare job (templates/mlflow/prepare.py) does as the superuser, as JSON: no secret in it
    (the role's password comes from its secret's file), so it may be a job's argument."""
    role = settings.mlflow_db_user
    return json.dumps(
        {
            "role": role,
            "create_role": create_role_sql(role),
            "auth_db": settings.mlflow_auth_db if settings.mlflow_auth else "",
            "owners": [database_owner_sql(role, database) for database in settings.mlflow_databases],
            "databases": list(settings.mlflow_databases),
            "objects": objects_owner_sql(role),
            "s3_user": settings.mlflow_s3_access_key,
        },
        sort_keys=True,
    )


def bucket_policy_name(settings: Settings) -> str:
    """The artifact store's name of MLflow's policy."""
    return f"{settings.mlflow_s3_access_key}-bucket"


def bucket_policy(bucket: str) -> dict[str, Any]:
    """An S3 policy that allows object and list actions on `bucket` and nothing else (no bucket made or
    deleted, no other bucket listed, no administration)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"],
                "Resource": [f"arn:aws:s3:::{bucket}"],
            },
            {
                "Effect": "Allow",
                "Action": [
                    "s3:GetObject",
                    "s3:PutObject",
                    "s3:DeleteObject",
                    "s3:AbortMultipartUpload",
                    "s3:ListMultipartUploadParts",
                ],
                "Resource": [f"arn:aws:s3:::{bucket}/*"],
            },
        ],
    }


# Where `weed shell` finds SeaweedFS's master inside the store's own container (`weed mini`'s default):
# its parts talk on loopback (`-ip=127.0.0.1`), so its shell runs there on every target, never elsewhere.
WEED_SHELL = ("weed", "shell", "-master=127.0.0.1:9333")
# SeaweedFS's actions, each scoped to one bucket (`s3.configure -actions`).
SEAWEEDFS_ACTIONS = ("Read", "Write", "List")


def seaweedfs_configure(settings: Settings) -> str:
    """The `weed shell` command (its stdin: it holds the secret key) that makes MLflow's identity,
    allowed to read, write and list MLFLOW_BUCKET only; `-apply` writes it, run again it updates it."""
    actions = ",".join(f"{action}:{settings.mlflow_bucket}" for action in SEAWEEDFS_ACTIONS)
    return (
        f"s3.configure -user {settings.mlflow_s3_access_key} -access_key {settings.mlflow_s3_access_key} "
        f"-secret_key {settings.mlflow_s3_secret_key.get_secret_value()} -actions {actions} -apply\n"
    )


# MinIO's own client (`mc`, in MinIO's image) makes MLflow's user on Swarm and Kubernetes, in a one-shot
# job or in MinIO's pod. Secrets are read from files (Docker or Kubernetes secrets, or /dev/stdin) and
# given to mc on its stdin, which it reads when the key is not an argument: no value is in a command line.
# `policy attach` of a policy the user has already is refused as "already in effect": that is success.
MC_GRANT = """set -eu
config="/tmp/trackstack-mc-$$"
trap 'rm -rf "$config"' EXIT
mc() { command mc --config-dir "$config" --quiet "$@"; }
mc alias set --api s3v4 stack "$1" "$2" <"$3" >/dev/null
mc admin user add stack "$4" <"$5" >/dev/null
printf '%s' "$7" >"$config/policy.json"
mc admin policy create stack "$6" "$config/policy.json" >/dev/null
if ! out=$(mc admin policy attach stack "$6" --user "$4" 2>&1); then
  case $out in *"already in effect"*) ;; *) printf '%s\\n' "$out" >&2; exit 1 ;; esac
fi
echo "MinIO: MLflow's user $4 may use bucket $8 only"
"""


def mc_grant_command(settings: Settings, *, endpoint: str, root_file: str, own_file: str) -> list[str]:
    """The command (MinIO's image) that makes MLflow's user with its key and the bucket's policy, or brings
    them back to `.env`'s; `endpoint` is MinIO's S3 API from where it runs, the files hold the root password
    and MLFLOW_S3_SECRET_KEY."""
    return ["sh", "-c", MC_GRANT, "sh", endpoint, settings.minio_root_user, root_file,
            settings.mlflow_s3_access_key, own_file, bucket_policy_name(settings),
            json.dumps(bucket_policy(settings.mlflow_bucket)), settings.mlflow_bucket]  # fmt: skip
