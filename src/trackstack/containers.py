"""What the containers are told, the same on every target: the MLflow server's command and
environment, pgAdmin's environment and server list, the in-stack addresses.

Compose (`templates/compose.yaml.j2`), Swarm and Kubernetes all write these; they differ only in
how credentials arrive (Compose: `${KEY}` references to `.env`; Swarm and Kubernetes: files under
/run/secrets through `*_FILE` variables, `shared_server.py`), which each renderer adds itself.
A variable added to `mlflow_environment` reaches all three targets.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from trackstack.services import MLFLOW, POSTGRES
from trackstack.settings import Settings
from trackstack.templating import render_template, template_text

# The pgAdmin image loads this file when it creates its configuration database, so the server
# `localhost` is in pgAdmin's tree from its first start (the renderers mount it there).
PGADMIN_SERVERS_PATH = "/trackstack/servers.json"
# The pgAdmin image's interpreter (dpage/pgadmin4 keeps pgAdmin in a virtualenv).
PGADMIN_PYTHON = "/venv/bin/python3"


def mlflow_environment(settings: Settings) -> dict[str, str]:
    """The MLflow server's variables that carry no credential."""
    environment = {
        # MLflow's own Postgres role and S3 user (privileges.py); their secrets arrive per target.
        "PGUSER": settings.mlflow_db_user,
        "AWS_ACCESS_KEY_ID": settings.mlflow_s3_access_key,
        # The artifact store's S3 API in the stack: http://minio:9000 (MinIO) or http://minio:8333 (SeaweedFS).
        "MLFLOW_S3_ENDPOINT_URL": f"http://{settings.store.address}",
        # The image's entrypoint waits for these before the server starts (docker/mlflow-entrypoint.py).
        "TRACKSTACK_WAIT_FOR": f"{POSTGRES.address} {settings.store.address}",
        # A course stack reports nothing home.
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        # MLflow's background job runner (GenAI scorers, evaluation, prompt optimization): a
        # dozen more processes and about 1 GiB more memory per server when on (MLFLOW_JOB_EXECUTION).
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true" if settings.mlflow_job_execution else "false",
        # Artifacts go through this server (--serve-artifacts). MLflow 3.18+ offers clients presigned
        # transfers straight to the store only when these are on; they would be URLs at the store's
        # in-stack address (MLFLOW_S3_ENDPOINT_URL), which no student's machine resolves. Off, said
        # here rather than left to MLflow's default. (3.15-3.17 offer them regardless:
        # settings.artifact_download_warning.)
        "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false",
        "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "false",
        **metrics_environment(),
    }
    if settings.mlflow_auth:
        environment |= {
            "MLFLOW_AUTH_DB": settings.mlflow_auth_db,
            "POSTGRES_DB": settings.postgres_db,
            "MLFLOW_ADMIN_USER": settings.mlflow_admin_user,
            "MLFLOW_DEFAULT_PERMISSION": settings.mlflow_default_permission,
            # Fail closed: a request to a route without a permission check of its own is refused
            # (403), not let through. MLflow's default from 3.16 on, said here rather than left to
            # it; older releases do not read it (and are refused with logins: advisories.py).
            "MLFLOW_BASIC_AUTH_FAIL_CLOSED": "true",
        }
    return environment


def store_environment(settings: Settings) -> dict[str, str]:
    """The artifact store's variables that carry no credential (its credentials: `Service.credentials`)."""
    store = settings.store
    environment = dict(store.environment)
    if store.public_url_variable:
        # Where this machine reaches its web UI (MinIO's console redirects its logins there).
        environment[store.public_url_variable] = settings.url(store.endpoints[0].port_key)
    return environment


def pgadmin_environment(*, compiled_image: bool = False) -> dict[str, str]:
    """pgAdmin's variables that carry no credential.

    `compiled_image`: the container runs the image Compose builds with pgAdmin's bytecode in it
    (templates/Dockerfile.pgadmin.j2), not PGADMIN_IMAGE as it is (Swarm, Kubernetes).
    """
    environment = {
        "PGADMIN_DISABLE_POSTFIX": "true",
        # Offline-friendly and private: no update check, no Gravatar lookup of the login e-mail.
        "PGADMIN_CONFIG_UPGRADE_CHECK_ENABLED": "False",
        "PGADMIN_CONFIG_SHOW_GRAVATAR_IMAGE": "False",
        "PGADMIN_SERVER_JSON_FILE": PGADMIN_SERVERS_PATH,
        # The server entry holds no password, only a command that reads it in the container.
        "PGADMIN_CONFIG_ENABLE_SERVER_PASS_EXEC_CMD": "True",
    }
    if not compiled_image:
        # The image ships no bytecode and its user may not write next to the code, so each start
        # and each `setup.py` run compiled all of pgAdmin again (seconds of CPU): keep the
        # compiled files in the data volume (Python checks them against the sources). Not with
        # the compiled image: Python would then look for bytecode only here, not beside the code.
        environment["PYTHONPYCACHEPREFIX"] = "/var/lib/pgadmin/pycache"
    return environment


# Where each MLflow server's workers share their Prometheus metrics (`--expose-prometheus`): inside
# the container, emptied by the image's entrypoint before the server starts (MLflow wants it empty).
METRICS_DIR = "/tmp/mlflow-metrics"  # noqa: S108 - a folder inside the container, private to it


def metrics_environment() -> dict[str, str]:
    """What the Prometheus exporter needs besides `--expose-prometheus`: prometheus_client's multiprocess
    mode reads the folder from PROMETHEUS_MULTIPROC_DIR in every worker (MLflow sets only the lower-case
    name, which prometheus_client reads as deprecated), and the entrypoint empties it."""
    return {"PROMETHEUS_MULTIPROC_DIR": METRICS_DIR}


# Run in the MLflow container before the server when MLFLOW_AUTH=true; Python, not a template.
AUTH_START = "mlflow/start_with_auth.py"
# pgAdmin's registration: the server name students know from the course, and the command
# pgAdmin runs for its password (the variable is set in the pgAdmin block of the compose template).
PGADMIN_SERVER_NAME = "localhost"
PGADMIN_PASSWORD_COMMAND = "printenv TRACKSTACK_POSTGRES_PASSWORD"  # noqa: S105 - names a variable


def auth_start() -> str:
    """The script that prepares MLflow's logins, then runs the server command after it."""
    return template_text(AUTH_START)


def backend_store_uri(user: str, database: str) -> str:
    """MLflow's backend store inside the stack, without a password (MLflow gets PGPASSWORD).

    The driver is named: SQLAlchemy 2.1 (MLflow 3.9 and later) reads a bare postgresql:// as
    psycopg 3, but the image installs psycopg2, which every MLflow version can use.
    """
    return f"postgresql+psycopg2://{user}@{POSTGRES.address}/{database}"


def allowed_hosts(settings: Settings) -> list[str]:
    """The Host headers MLflow answers: this machine's names, the stack's own, and MLFLOW_PUBLIC_HOSTS.

    A public name is allowed bare (behind a proxy on port 80) and with MLflow's published port.
    """
    port = settings.ports["MLFLOW_PORT"]
    names = {f"localhost:{port}", f"127.0.0.1:{port}", f"{settings.host}:{port}", MLFLOW.address, MLFLOW.name}
    for name in settings.public_hosts:
        names |= {name, f"{name}:{port}"}
    return sorted(names)


# How long uvicorn keeps an idle connection open (its own default: 5 s). A client that sends on a kept
# connection at the instant the server closes it gets "Remote end closed connection without response",
# and MLflow's client does not send a POST again; a training loop that logs every few seconds pauses
# about 5 s often, rarely 75 s (CI met it once at the default: a teardown's experiments/delete).
KEEP_ALIVE_SECONDS = 75


def mlflow_server_args(
    settings: Settings, *, user: str, database: str, hosts: list[str], logins: bool, uvicorn: Sequence[str] = ()
) -> list[str]:
    """`mlflow server` as every target runs it; `user` and `database` as the target spells them
    (Compose: references to .env), `logins`: MLflow's basic-auth app, `uvicorn`: more uvicorn options."""
    return [
        "mlflow",
        "server",
        "--host=0.0.0.0",
        f"--port={MLFLOW.port}",
        f"--workers={settings.mlflow_workers}",
        f"--backend-store-uri={backend_store_uri(user, database)}",
        "--serve-artifacts",
        f"--artifacts-destination=s3://{settings.mlflow_bucket}",
        f"--allowed-hosts={','.join(hosts)}",
        f"--uvicorn-opts={shlex.join([f'--timeout-keep-alive={KEEP_ALIVE_SECONDS}', *uvicorn])}",
        # Prometheus metrics at /metrics; with logins, only a login reaches them (docs/running-a-class.md).
        f"--expose-prometheus={METRICS_DIR}",
        *(["--app-name=basic-auth"] if logins else []),
    ]


def render_servers_json(settings: Settings, password_command: str = PGADMIN_PASSWORD_COMMAND) -> str:
    """pgAdmin's server list: no password, only the command that reads it (from the container's
    environment on Compose; Swarm and Kubernetes pass one that reads its secret's file)."""
    return render_template(
        "pgadmin/servers.json.j2",
        name=PGADMIN_SERVER_NAME,
        maintenance_db=settings.postgres_db,
        username=settings.postgres_user,
        password_command=password_command,
    )
