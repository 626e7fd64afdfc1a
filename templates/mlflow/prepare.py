# Run once per `invoke deploy` as a one-shot Swarm job, before MLflow's replicas start (and with
# them stopped on a first deploy): MLflow's tables are created or upgraded here, by one process,
# never by several replicas at once; the artifact bucket is created. A Postgres advisory lock
# keeps two deploys from doing it at the same time. Then the script becomes its command line,
# sys.argv[3:] (start_with_auth.py with `true`: the logins database and the admin, then exit).
# sys.argv[1] is the backend store URI (no password: libpq reads PGPASSWORD), sys.argv[2] the bucket.
import os
import sys

import boto3
import psycopg2
import sqlalchemy
from botocore.exceptions import ClientError
from mlflow.store.db import utils

uri, bucket = sys.argv[1], sys.argv[2]
env = os.environ
lock = psycopg2.connect(host="postgres", dbname=env["POSTGRES_DB"], user=env["POSTGRES_USER"])
lock.autocommit = True
lock.cursor().execute("SELECT pg_advisory_lock(hashtext('trackstack-prepare'))")  # released at exit

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

s3 = boto3.client("s3", endpoint_url=env["MLFLOW_S3_ENDPOINT_URL"])
try:
    s3.head_bucket(Bucket=bucket)
    print(f"trackstack: bucket {bucket} already exists", flush=True)
except ClientError:
    s3.create_bucket(Bucket=bucket)
    print(f"trackstack: created bucket {bucket}", flush=True)

os.execvp(sys.argv[3], sys.argv[3:])  # noqa: S606 - the next step's command line, no shell
