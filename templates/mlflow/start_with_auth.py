# Runs in the MLflow container before `mlflow server --app-name basic-auth` (MLFLOW_AUTH=true).
# The logins database exists already, owned by MLflow's role (PGUSER), which may not create databases:
# trackstack made it as the superuser (privileges.py). The auth app's ini file is written from the
# environment into a private file (mode 600) inside the container, never the project folder; the
# admin's password is made the one in .env (MLflow itself sets it only when it creates the
# admin). Then the script becomes the server: sys.argv[1:] is its command line.
# With TRACKSTACK_AUTH_PREPARED=true (Docker Swarm) a one-shot job did the database and admin steps
# before any replica started (templates/mlflow/prepare.py): replicas only write their ini file.
import configparser
import os
import sys

from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

env = os.environ
logins_db = env["MLFLOW_AUTH_DB"]
admin = env["MLFLOW_ADMIN_USER"]
password = env.pop("MLFLOW_ADMIN_PASSWORD")  # the server reads it from the ini file only
prepared = env.pop("TRACKSTACK_AUTH_PREPARED", "") == "true"

# The driver is named: SQLAlchemy 2.1 (MLflow 3.9 and later) reads a bare postgresql:// as psycopg 3.
# libpq takes the password from PGPASSWORD: it is in neither the URI nor a command line.
uri = "postgresql+psycopg2://" + env["PGUSER"] + "@postgres:5432/" + logins_db
config = configparser.RawConfigParser()
config["mlflow"] = {
    "default_permission": env["MLFLOW_DEFAULT_PERMISSION"],
    "database_uri": uri,
    "admin_username": admin,
    "admin_password": password.replace("%", "%%"),  # MLflow reads the file with interpolation
    "authorization_function": "mlflow.server.auth:authenticate_request_basic_auth",
}
path = os.path.expanduser("~/basic_auth.ini")  # /home/mlflow, private to the server user
with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as stream:
    config.write(stream)
env["MLFLOW_AUTH_CONFIG_PATH"] = path

if not prepared:
    store = SqlAlchemyStore()
    store.init_db(uri)  # the logins schema, before the server's workers race to create it
    if store.has_user(admin):
        store.update_user(admin, password=password, is_admin=True)
    else:
        store.create_user(admin, password, is_admin=True)
os.execvp(sys.argv[1], sys.argv[1:])  # noqa: S606 - the server command from compose.yaml, no shell
