"""Pure rendering: settings in, text out. Nothing here touches the disk or Docker.

Jinja owns structure, versions and ports; credentials stay `${VAR}` references that
Docker Compose fills in from `.env` at run time, so no generated file holds a secret.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from pathlib import Path

import jinja2

from trackstack import container_env
from trackstack.engine import EngineFeatures
from trackstack.paths import COMPOSE_FILE, PROJECT_FILES, TEMPLATES, constraints_file
from trackstack.services import BY_NAME, VOLUMES
from trackstack.settings import Settings

# The MLflow image's Python dependencies besides MLflow itself, pinned for repeatable builds.
PSYCOPG2_VERSION = "2.9.10"
BOTO3_VERSION = "1.38.23"
# uvicorn, which serves MLflow 3, runs on these C implementations when they are installed (what
# its "standard" extra adds for speed): uvloop's event loop and httptools' HTTP parser instead of
# asyncio's loop and the pure-Python h11. Their versions come from the lock. bench/README.md has
# what they gain (metrics/s of the tracking clients).
UVICORN_SPEEDUPS = ("uvloop", "httptools")


def image_requirements(mlflow_version: str) -> list[str]:
    """What the MLflow image installs (and `invoke lock` resolves): MLflow with its auth extra, the
    Postgres driver, the S3 client, uvicorn's speed-ups."""
    return [
        f"mlflow[auth]=={mlflow_version}",
        f"psycopg2-binary=={PSYCOPG2_VERSION}",
        f"boto3=={BOTO3_VERSION}",
        *UVICORN_SPEEDUPS,
    ]


def backend_store_uri(user: str, database: str) -> str:
    """MLflow's backend store inside the stack, without a password (MLflow gets PGPASSWORD).

    The driver is named: SQLAlchemy 2.1 (MLflow 3.9 and later) reads a bare postgresql:// as
    psycopg 3, but the image installs psycopg2, which every MLflow version can use.
    """
    return f"postgresql+psycopg2://{user}@postgres:5432/{database}"


DOCKERFILE = "Dockerfile.mlflow"
# PGADMIN_IMAGE with its Python code compiled, for Compose (Swarm and Kubernetes run PGADMIN_IMAGE).
PGADMIN_DOCKERFILE = "Dockerfile.pgadmin"
# The user the pgAdmin image runs as (its Dockerfile: USER 5050), restored after compiling as root.
PGADMIN_USER = "5050"
# pgAdmin's server list, mounted into its container (a Compose config): no secret in it.
SERVERS_FILE = "pgadmin-servers.json"
DOCKERFILE_LABEL = "org.trackstack.dockerfile-sha256"
# Copied into the MLflow image: waits for Postgres and MinIO, then runs the server.
MLFLOW_ENTRYPOINT = PROJECT_FILES / "docker" / "mlflow-entrypoint.py"


# pgAdmin's registration: the server name students know from the course, and the command
# pgAdmin runs for its password (the variable is set in the pgAdmin block of the template).
PGADMIN_SERVER_NAME = "localhost"
PGADMIN_PASSWORD_COMMAND = "printenv TRACKSTACK_POSTGRES_PASSWORD"  # noqa: S105 - names a variable


@cache
def environment(templates: Path = TEMPLATES) -> jinja2.Environment:
    """The single Jinja environment: a missing variable is an error, never an empty string."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - YAML, Dockerfile and JSON, never HTML
    )
    # A JSON list is a YAML flow sequence; unlike `tojson` this leaves quotes unescaped.
    env.filters["json"] = json.dumps
    # A macro's output without its last line break, where the caller's line supplies one.
    env.filters["rstrip"] = str.rstrip
    return env


def render_template(template: str, **context: object) -> str:
    return environment().get_template(template).render(**context)


def render_dockerfile(settings: Settings) -> str:
    return render_template(
        f"{DOCKERFILE}.j2",
        base_image=settings.mlflow_base_image,
        mlflow_version=settings.mlflow_version,
        constraints=constraints_file(settings.mlflow_version).relative_to(PROJECT_FILES).as_posix(),
        requirements=image_requirements(settings.mlflow_version),
        entrypoint=MLFLOW_ENTRYPOINT.relative_to(PROJECT_FILES).as_posix(),
        server_skips_pandas=_release(settings.mlflow_version) < (3, 9),
    )


def render_pgadmin_dockerfile(settings: Settings) -> str:
    return render_template(
        f"{PGADMIN_DOCKERFILE}.j2",
        base_image=settings.pgadmin_image,
        python=container_env.PGADMIN_PYTHON,
        user=PGADMIN_USER,
    )


def pgadmin_build_digest(dockerfile: str) -> str:
    """What the compiled pgAdmin image is built from: its Dockerfile alone (no file is copied in)."""
    return hashlib.sha256(dockerfile.encode()).hexdigest()


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def build_digest(settings: Settings, dockerfile: str) -> str:
    """What the MLflow image is built from: its Dockerfile, its dependency lock and its entrypoint."""
    lock = constraints_file(settings.mlflow_version).read_bytes()
    return hashlib.sha256(b"\0".join((dockerfile.encode(), lock, MLFLOW_ENTRYPOINT.read_bytes()))).hexdigest()


# Run in the MLflow container before the server when MLFLOW_AUTH=true; Python, not a template.
AUTH_START = "mlflow/start_with_auth.py"


def allowed_hosts(settings: Settings) -> list[str]:
    """The Host headers MLflow answers: this machine's names, the stack's own, and MLFLOW_PUBLIC_HOSTS.

    A public name is allowed bare (behind a proxy on port 80) and with MLflow's published port.
    """
    port = settings.ports["MLFLOW_PORT"]
    names = {f"localhost:{port}", f"127.0.0.1:{port}", f"{settings.host}:{port}", "mlflow:5000", "mlflow"}
    for name in settings.public_hosts:
        names |= {name, f"{name}:{port}"}
    return sorted(names)


def render_compose(settings: Settings, engine: EngineFeatures, dockerfile: str, pgadmin_dockerfile: str) -> str:
    return render_template(
        f"{COMPOSE_FILE}.j2",
        s=settings,
        engine=engine,
        services=BY_NAME,
        volumes=VOLUMES,
        allowed_hosts=",".join(allowed_hosts(settings)),
        auth_start=(TEMPLATES / AUTH_START).read_text(encoding="utf-8"),
        backend_store_uri=backend_store_uri("${POSTGRES_USER}", "${POSTGRES_DB}"),
        dockerfile=DOCKERFILE,
        dockerfile_label=DOCKERFILE_LABEL,
        dockerfile_digest=build_digest(settings, dockerfile),
        pgadmin_dockerfile=PGADMIN_DOCKERFILE,
        pgadmin_dockerfile_digest=pgadmin_build_digest(pgadmin_dockerfile),
        servers_file=SERVERS_FILE,
        pgadmin_server_name=PGADMIN_SERVER_NAME,
        mlflow_environment=container_env.mlflow_environment(settings),
        pgadmin_environment=container_env.pgadmin_environment(compiled_image=True),
        pgadmin_servers_path=container_env.PGADMIN_SERVERS_PATH,
    )


def render_servers_json(settings: Settings, password_command: str = PGADMIN_PASSWORD_COMMAND) -> str:
    """pgAdmin's server list: no password, only the command that reads it (from the container's
    environment on Compose; Swarm passes one that reads its secret's file)."""
    return render_template(
        "pgadmin/servers.json.j2",
        name=PGADMIN_SERVER_NAME,
        maintenance_db=settings.postgres_db,
        username=settings.postgres_user,
        password_command=password_command,
    )


def render_all(settings: Settings, engine: EngineFeatures) -> dict[str, str]:
    """Every generated project file, by its name relative to the project root."""
    dockerfile, pgadmin_dockerfile = render_dockerfile(settings), render_pgadmin_dockerfile(settings)
    return {
        COMPOSE_FILE: render_compose(settings, engine, dockerfile, pgadmin_dockerfile),
        DOCKERFILE: dockerfile,
        PGADMIN_DOCKERFILE: pgadmin_dockerfile,
        SERVERS_FILE: render_servers_json(settings),
    }
