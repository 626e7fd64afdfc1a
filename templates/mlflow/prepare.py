# Run once per `invoke deploy` as a one-shot Swarm job, before MLflow's replicas start (and with
# them stopped on a first deploy): MLflow's tables are created or upgraded here, by one process,
# never by several replicas at once; the artifact bucket is created. A Postgres advisory lock
# keeps two deploys from doing it at the same time. Then the script becomes its command line,
# sys.argv[4:] (start_with_auth.py with `true`: the logins admin, then exit).
# sys.argv[1] is the backend store URI of MLflow's own role (no password: libpq reads PGPASSWORD),
# sys.argv[2] the bucket, sys.argv[3] what to do as the superuser (privileges.prepare_plan, JSON): make
# MLflow's role, its logins database, and give the role both databases and everything in them.
# The superuser's password is only this job's (TRACKSTACK_SUPERUSER_PASSWORD); MLflow never gets it, nor
# the store's root key (TRACKSTACK_STORE_ROOT_*), with which this job creates the bucket. MLflow's own S3
# user is made before this job runs (`invoke deploy`); the job checks that MLflow's keys reach the bucket.
import json
import os
import sys
import time

import boto3
import psycopg2
import sqlalchemy
from botocore.exceptions import ClientError
from mlflow.store.db import utils
from psycopg2 import sql

uri, bucket, plan = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
env = os.environ
superuser = {"host": "postgres", "user": env["POSTGRES_USER"], "password": env.pop("TRACKSTACK_SUPERUSER_PASSWORD")}
store_root = {
    "aws_access_key_id": env.pop("TRACKSTACK_STORE_ROOT_USER"),
    "aws_secret_access_key": env.pop("TRACKSTACK_STORE_ROOT_PASSWORD"),
}
lock = psycopg2.connect(dbname=env["POSTGRES_DB"], **superuser)
lock.autocommit = True
with lock.cursor() as cursor:
    cursor.execute("SELECT pg_advisory_lock(hashtext('trackstack-prepare'))")  # released at exit
    cursor.execute(plan["create_role"])
    role = sql.Identifier(plan["role"])
    cursor.execute(sql.SQL("ALTER ROLE {} WITH PASSWORD %s").format(role), (env["PGPASSWORD"],))
    cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (plan["auth_db"],))
    if plan["auth_db"] and cursor.fetchone() is None:
        cursor.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(plan["auth_db"]), role))
    for statement in plan["owners"]:
        cursor.execute(statement)
    cursor.execute("SELECT datname FROM pg_database WHERE datname = ANY(%s)", (plan["databases"],))
    present = [row[0] for row in cursor.fetchall()]
for database in present:  # ownership never crosses databases: move each one's objects from inside it
    connection = psycopg2.connect(dbname=database, **superuser)
    connection.autocommit = True
    connection.cursor().execute(plan["objects"])
    connection.close()
print(f"trackstack: MLflow's role {plan['role']} owns {', '.join(present)}", flush=True)

engine = utils.create_sqlalchemy_engine_with_retry(uri)
head = utils._get_latest_schema_revision()
# A database MLflow never touched has no alembic_version table; an older MLflow's tables are
# upgraded (checking for every current table would take an older schema for an empty database).
if not sqlalchemy.inspect(engine).has_table("alembic_version"):
    print(f"trackstack: creating MLflow's tables (schema {head})", flush=True)
    utils._initialize_tables(engine)
else:
    found = utils._get_schema_version(engine)
    if found != head:
        print(f"trackstack: upgrading MLflow's schema from {found} to {head}", flush=True)
        try:
            utils._upgrade_db(engine)
        except Exception as error:  # an unknown revision: a newer MLflow wrote it
            sys.exit(
                f"trackstack: cannot upgrade MLflow's schema from {found} to {head} ({type(error).__name__}: "
                f"{error}); a newer MLflow wrote it? MLflow cannot downgrade: set the newer MLFLOW_VERSION again"
            )
    else:
        print(f"trackstack: MLflow's schema is current ({head})", flush=True)
engine.dispose()

root = boto3.client("s3", endpoint_url=env["MLFLOW_S3_ENDPOINT_URL"], **store_root)
try:
    root.head_bucket(Bucket=bucket)
    print(f"trackstack: bucket {bucket} already exists", flush=True)
except ClientError:
    root.create_bucket(Bucket=bucket)
    print(f"trackstack: created bucket {bucket}", flush=True)
# MLflow's own keys (AWS_* of its environment): a store may take a moment to load a new identity.
own = boto3.client("s3", endpoint_url=env["MLFLOW_S3_ENDPOINT_URL"])
for attempt in range(30):
    try:
        own.head_bucket(Bucket=bucket)
        break
    except ClientError as error:
        if attempt == 29:
            sys.exit(
                f"trackstack: MLflow's S3 user {env['AWS_ACCESS_KEY_ID']} cannot reach bucket {bucket} ({error}); "
                "`invoke deploy` makes it before this job: its output above says why it could not"
            )
        time.sleep(1)
print(f"trackstack: MLflow's S3 user {env['AWS_ACCESS_KEY_ID']} reaches bucket {bucket}", flush=True)

os.execvp(sys.argv[4], sys.argv[4:])  # noqa: S606 - the next step's command line, no shell
