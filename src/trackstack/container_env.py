"""What the containers are told that is no secret, the same on every target.

Compose (`templates/compose.yaml.j2`) and Swarm (`swarm.py`) both write these variables; they
differ only in how credentials arrive (Compose: `${KEY}` references to `.env`; Swarm: Docker
secrets through `*_FILE` variables), which each renderer adds itself.
"""

from __future__ import annotations

from trackstack.settings import Settings

# The pgAdmin image loads this file when it creates its configuration database, so the server
# `localhost` is in pgAdmin's tree from its first start (the renderers mount it there).
PGADMIN_SERVERS_PATH = "/trackstack/servers.json"
# The pgAdmin image's interpreter (dpage/pgadmin4 keeps pgAdmin in a virtualenv).
PGADMIN_PYTHON = "/venv/bin/python3"


def mlflow_environment(settings: Settings) -> dict[str, str]:
    """The MLflow server's variables that carry no credential."""
    environment = {
        "MLFLOW_S3_ENDPOINT_URL": "http://minio:9000",
        # The image's entrypoint waits for these before the server starts (docker/mlflow-entrypoint.py).
        "TRACKSTACK_WAIT_FOR": "postgres:5432 minio:9000",
        # A course stack reports nothing home.
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        # MLflow's background job runner (GenAI scorers, evaluation, prompt optimization): a
        # dozen more processes and about 1 GiB more memory per server when on (MLFLOW_JOB_EXECUTION).
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "true" if settings.mlflow_job_execution else "false",
        # Artifacts go through this server (--serve-artifacts). MLflow 3.18+ offers clients presigned
        # transfers straight to the store only when these are on; they would be URLs at the store's
        # in-stack address (MLFLOW_S3_ENDPOINT_URL), which no student's machine resolves. Off, said
        # here rather than left to MLflow's default. (3.15-3.17 offer them
        # regardless: settings.artifact_download_warning.)
        "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false",
        "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "false",
    }
    if settings.mlflow_auth:
        environment |= {
            "MLFLOW_AUTH_DB": settings.mlflow_auth_db,
            "MLFLOW_ADMIN_USER": settings.mlflow_admin_user,
            "MLFLOW_DEFAULT_PERMISSION": settings.mlflow_default_permission,
        }
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
