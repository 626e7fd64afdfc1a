"""What a shared server is on either orchestrator (Swarm, Kubernetes): `.env`'s checks for it,
credentials read as files under /run/secrets (the images' `*_FILE` variables) and their names,
the MLflow server with logins, and the one-shot script that prepares its database and bucket."""

from __future__ import annotations

import functools
import hashlib
import json
import shlex
from collections.abc import Mapping, Sequence

from pydantic import TypeAdapter, ValidationError

from trackstack import backup_image, containers, privileges
from trackstack.problems import Problem
from trackstack.services import PREPARE_SECRETS, SWARM_SECRET_KEYS, SecretUse, Service
from trackstack.settings import Settings
from trackstack.templating import template_text

# Creates or upgrades MLflow's tables and its bucket (a Swarm job, a Kubernetes Job), again whenever
# its fingerprint changes (prepare_fingerprint).
PREPARE = "mlflow/prepare.py"
FINGERPRINT_CHARS = 12
# Docker names secrets and services with at most 64 and 63 characters.
MAX_PROJECT_NAME = 20
SECRET_HASH_BYTES = 6
# pgAdmin's password command on a shared server: the Postgres secret's file.
SECRET_FILE_PASSWORD_COMMAND = "cat /run/secrets/postgres_password"  # noqa: S105 - names a file


@functools.lru_cache(maxsize=64)  # one deploy names each secret several times; scrypt is slow on purpose
def secret_name(project: str, key: str, value: str) -> str:
    """The Docker secret for `.env` key `key`: a new value is a new name, so services roll.

    The version is a slow, salted hash (scrypt): the stack file and `docker secret ls` show it,
    and guessing a password from it must cost as much as guessing it at the login.
    """
    salt = f"trackstack/{project}/{key}".encode()
    digest = hashlib.scrypt(value.encode(), salt=salt, n=2**14, r=8, p=1, dklen=SECRET_HASH_BYTES)
    return f"{project}_{key.lower()}_{digest.hex()}"


def secret_names(settings: Settings) -> dict[str, str]:
    """Docker secret names by their target in /run/secrets, for every secret a service reads."""
    project = settings.compose_project_name
    return {
        key.lower(): secret_name(project, key, getattr(settings, key.lower()).get_secret_value())
        for key in (*SWARM_SECRET_KEYS, *backup_image.secret_keys(settings))
    }


def deploy_problems(values: Mapping[str, str]) -> list[Problem]:
    """What raw `.env` values lack for a shared server: reported with every other problem, before anything runs."""
    problems = []
    if not values.get("MLFLOW_IMAGE_REPOSITORY", "").strip():
        problems.append(
            Problem(
                "MLFLOW_IMAGE_REPOSITORY",
                "''",
                "`invoke deploy` pushes the MLflow image there, so that every node can pull it",
                "set it to a repository every node can pull from, e.g. registry.school.example/trackstack-mlflow",
            )
        )
    auth = values.get("MLFLOW_AUTH", "false")
    if _is_bool(auth) and not TypeAdapter(bool).validate_python(auth):  # a non-boolean: the field check says so
        problems.append(
            Problem(
                "MLFLOW_AUTH",
                repr(auth),
                "a shared server needs logins",
                "set MLFLOW_AUTH=true with MLFLOW_ADMIN_PASSWORD and MLFLOW_FLASK_SERVER_SECRET_KEY "
                "(`invoke init` writes them into a new .env)",
            )
        )
    if not values.get("MLFLOW_PUBLIC_HOSTS", "").strip():
        problems.append(
            Problem(
                "MLFLOW_PUBLIC_HOSTS",
                "''",
                "the proxy's TLS certificate is for these names, and students reach MLflow by the first",
                "set the name (or address) of the node labelled trackstack.data=true, e.g. mlflow.school.example",
            )
        )
    project = values.get("COMPOSE_PROJECT_NAME", "")
    if len(project) > MAX_PROJECT_NAME:
        problems.append(
            Problem(
                "COMPOSE_PROJECT_NAME",
                repr(project),
                f"longer than {MAX_PROJECT_NAME} characters: Docker's names of secrets and services would be too long",
                f"choose at most {MAX_PROJECT_NAME} characters",
            )
        )
    return problems


def _is_bool(value: str) -> bool:
    try:
        TypeAdapter(bool).validate_python(value)
    except ValidationError:
        return False
    return True


def mlflow_server_args(settings: Settings, hosts: list[str] | None = None, uvicorn: Sequence[str] = ()) -> list[str]:
    """The MLflow server of a shared server: always with logins (`deploy_problems` insists on them)."""
    return containers.mlflow_server_args(
        settings,
        user=settings.mlflow_db_user,
        database=settings.postgres_db,
        hosts=containers.allowed_hosts(settings) if hosts is None else hosts,
        logins=True,
        uvicorn=uvicorn,
    )


def mlflow_environment(settings: Settings) -> dict[str, str]:
    """MLflow's variables that are no secret (the secrets are *_FILE variables from the table)."""
    return containers.mlflow_environment(settings) | {"POSTGRES_DB": settings.postgres_db}


def prepare_environment(settings: Settings) -> dict[str, str]:
    """The prepare job's variables: MLflow's, the superuser's name and the store's root user (their
    secrets: PREPARE_SECRETS)."""
    return mlflow_environment(settings) | {
        "POSTGRES_USER": settings.postgres_user,
        "TRACKSTACK_STORE_ROOT_USER": settings.minio_root_user,
    }


def store_environment(settings: Settings) -> dict[str, str]:
    """The artifact store's variables that are no secret: its constants, and those of its credentials
    whose `.env` key is no secret (the user names); the secrets arrive as files (`secret_variables`)."""
    store = settings.store
    return dict(store.environment) | {
        credential.variable: getattr(settings, credential.key.lower())
        for credential in store.credentials
        if credential.key not in SWARM_SECRET_KEYS
    }


def secret_files(service: Service) -> list[SecretUse]:
    """The secret files `service` mounts, each once (two variables may read one secret)."""
    return list({use.target: use for use in service.secrets}.values())


def secret_variables_entrypoint(service: Service) -> list[str]:
    """For an image that reads no `*_FILE` variable (`Service.reads_secret_files`): a shell that sets
    each secret's variable from its file under /run/secrets, then runs the image's entrypoint with the
    container's command. The values live in that process's environment only, as on Compose; the
    script names files, never values. Empty for an image that reads the files itself."""
    if service.reads_secret_files:
        return []
    lines = [f'{use.variable}="$(cat /run/secrets/{use.target})" || exit 1; export {use.variable}'
             for use in service.secrets if use.variable]  # fmt: skip
    script = "\n".join([*lines, f'exec {shlex.join(service.entrypoint)} "$@"'])
    return ["/bin/sh", "-c", script, "sh"]


def pgadmin_environment(settings: Settings) -> dict[str, str]:
    return {"PGADMIN_DEFAULT_EMAIL": settings.pgadmin_default_email} | containers.pgadmin_environment()


def fingerprint(parts: object) -> str:
    """A short hash of `parts` (anything JSON can write): equal parts, equal fingerprints."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:FINGERPRINT_CHARS]


def prepare_command(settings: Settings) -> list[str]:
    """What the prepare job runs in the MLflow image: the tables and the bucket, then the logins
    database and the admin (start_with_auth.py, which runs `true` after it instead of a server)."""
    uri = containers.backend_store_uri(settings.mlflow_db_user, settings.postgres_db)
    return ["python", "-c", template_text(PREPARE), uri, settings.mlflow_bucket, privileges.prepare_plan(settings),
            "python", "-c", containers.auth_start(), "true"]  # fmt: skip


def prepare_fingerprint(settings: Settings, *, image: str) -> str:
    """What the prepare job is made of: its image (MLflow's version, so the schema), its command (the
    scripts, the database and the bucket), its environment (the admin's name among it) and the names
    of MLflow's secrets, which are slow salted hashes of their values: a changed admin password
    changes it, and no secret is in it. Equal fingerprints mean the job would do nothing new."""
    secrets = secret_names(settings)
    return fingerprint(
        {
            "image": image,
            "command": prepare_command(settings),
            "environment": prepare_environment(settings),
            "secrets": {use.target: secrets[use.target] for use in PREPARE_SECRETS},
        }
    )


def render_servers_json(settings: Settings) -> str:
    """pgAdmin's server list; the password command reads the Postgres secret's file."""
    return containers.render_servers_json(settings, password_command=SECRET_FILE_PASSWORD_COMMAND)
