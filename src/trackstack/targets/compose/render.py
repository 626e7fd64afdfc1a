"""Docker Compose, pure: settings in, the compose file, the compiled pgAdmin image's Dockerfile and
pgAdmin's server list out. Nothing here touches the disk or Docker.

Jinja owns structure, versions and ports; credentials stay `${VAR}` references that
Docker Compose fills in from `.env` at run time, so no generated file holds a secret.
"""

from __future__ import annotations

import hashlib

from trackstack import backup_image, containers, mlflow_gc, tls
from trackstack.containers import PGADMIN_SERVER_NAME, auth_start, render_servers_json
from trackstack.engine import EngineFeatures
from trackstack.mlflow_image import DOCKERFILE, DOCKERFILE_LABEL, build_digest, render_dockerfile
from trackstack.paths import COMPOSE_FILE
from trackstack.services import BY_NAME, MLFLOW, PROXY
from trackstack.settings import Settings
from trackstack.templating import render_template
from trackstack.tls import ProxyCertificate

# PGADMIN_IMAGE with its Python code compiled, for Compose (Swarm and Kubernetes run PGADMIN_IMAGE).
PGADMIN_DOCKERFILE = "Dockerfile.pgadmin"
# The user the pgAdmin image runs as (its Dockerfile: USER 5050), restored after compiling as root.
PGADMIN_USER = str(BY_NAME["pgadmin"].fs_group)
# pgAdmin's server list, mounted into its container (a Compose config): no secret in it.
SERVERS_FILE = "pgadmin-servers.json"


def render_pgadmin_dockerfile(settings: Settings) -> str:
    return render_template(
        f"{PGADMIN_DOCKERFILE}.j2",
        base_image=settings.pgadmin_image,
        python=containers.PGADMIN_PYTHON,
        user=PGADMIN_USER,
    )


def pgadmin_build_digest(dockerfile: str) -> str:
    """What the compiled pgAdmin image is built from: its Dockerfile alone (no file is copied in)."""
    return hashlib.sha256(dockerfile.encode()).hexdigest()


def mlflow_server_args(settings: Settings) -> list[str]:
    """The MLflow server as Compose runs it: its database is a reference to `.env`; its role is
    derived from POSTGRES_USER (Settings.mlflow_db_user), which Compose cannot spell."""
    return containers.mlflow_server_args(
        settings,
        user=settings.mlflow_db_user,
        database="${POSTGRES_DB}",
        hosts=containers.allowed_hosts(settings),
        logins=settings.mlflow_auth,
    )


def backup_service(settings: Settings, dockerfile: str) -> dict[str, object] | None:
    """The scheduled backup's service (BACKUP_SCHEDULE set), or None: what the template writes of it."""
    if not settings.backup_schedule:
        return None
    digest = backup_image.build_digest(dockerfile)
    return {
        "image": backup_image.local_image(settings),
        "dockerfile": backup_image.DOCKERFILE,
        "digest": digest,
        "environment": backup_image.runner_environment(
            settings, target="compose", dest=backup_image.container_dest(settings)
        ),
        # A directory: bound from this machine (which may be an NFS mount of another one).
        "mount": None if backup_image.is_bucket(settings) else f"{settings.backup_dest}:{backup_image.MOUNT}",
        "bucket_secret": backup_image.is_bucket(settings),
        "healthcheck": backup_image.HEALTHCHECK,
    }


def gc_service(settings: Settings) -> dict[str, object] | None:
    """The scheduled `mlflow gc` (MLFLOW_GC_SCHEDULE set), in the MLflow image, or None."""
    if not settings.mlflow_gc_schedule:
        return None
    return {
        "command": mlflow_gc.loop_command(settings),
        "environment": mlflow_gc.environment(settings, shared=False),
        "healthcheck": mlflow_gc.HEALTHCHECK,
    }


# Compose's LAN-mode proxy (its own name: a Swarm deploy from the same folder writes `Caddyfile`).
CADDYFILE = "Caddyfile.compose"


def render_caddyfile(settings: Settings) -> str:
    """The LAN-mode proxy's Caddyfile: TLS for the server's names, requests on to the one MLflow."""
    return tls.render_caddyfile(settings, sites=tls.sites(settings), upstream=MLFLOW.address,
                                health_port=PROXY.probe.port)  # fmt: skip


def render_compose(
    settings: Settings,
    engine: EngineFeatures,
    dockerfile: str,
    pgadmin_dockerfile: str,
    certificate: ProxyCertificate | None = None,
    caddyfile: str = "",
    backup_dockerfile: str = "",
) -> str:
    proxy = settings.mlflow_behind_proxy
    return render_template(
        f"{COMPOSE_FILE}.j2",
        s=settings,
        engine=engine,
        services={service.name: service for service in settings.services},
        volumes=[service.volume for service in settings.services if service.volume],
        store_environment=containers.store_environment(settings),
        auth_start=auth_start(),
        mlflow_server=mlflow_server_args(settings),
        mlflow_port=MLFLOW.port,
        dockerfile=DOCKERFILE,
        dockerfile_label=DOCKERFILE_LABEL,
        dockerfile_digest=build_digest(settings, dockerfile),
        pgadmin_dockerfile=PGADMIN_DOCKERFILE,
        pgadmin_dockerfile_digest=pgadmin_build_digest(pgadmin_dockerfile),
        servers_file=SERVERS_FILE,
        pgadmin_server_name=PGADMIN_SERVER_NAME,
        mlflow_environment=containers.mlflow_environment(settings),
        pgadmin_environment=containers.pgadmin_environment(compiled_image=True),
        pgadmin_servers_path=containers.PGADMIN_SERVERS_PATH,
        # LAN mode: MLflow only through the TLS proxy, which alone publishes MLFLOW_PORT.
        published={service.name: not (proxy and service is MLFLOW) for service in settings.services},
        caddyfile=CADDYFILE,
        certificate=certificate,
        proxy_cert=tls.PROXY_CERT,
        proxy_key=tls.PROXY_KEY,
        # A new certificate or Caddyfile recreates the proxy (Compose does not compare mounted files).
        proxy_version=hashlib.sha256(f"{caddyfile}{certificate}".encode()).hexdigest()[:12],
        backup=backup_service(settings, backup_dockerfile),
        gc=gc_service(settings),
    )


def render_all(
    settings: Settings, engine: EngineFeatures, certificate: ProxyCertificate | None = None
) -> dict[str, str]:
    """Every generated project file, by its name relative to the project root; in LAN mode the proxy's
    Caddyfile too (`certificate`: its files, from `tls.ensure`; None with ACME)."""
    dockerfile, pgadmin_dockerfile = render_dockerfile(settings), render_pgadmin_dockerfile(settings)
    caddyfile = render_caddyfile(settings) if settings.mlflow_behind_proxy else ""
    backup_dockerfile = backup_image.render_dockerfile(settings) if settings.backup_schedule else ""
    files = {
        COMPOSE_FILE: render_compose(
            settings,
            engine,
            dockerfile,
            pgadmin_dockerfile,
            certificate,
            caddyfile,
            backup_dockerfile=backup_dockerfile,
        ),
        DOCKERFILE: dockerfile,
        PGADMIN_DOCKERFILE: pgadmin_dockerfile,
        SERVERS_FILE: render_servers_json(settings),
    }
    return (
        files
        | ({CADDYFILE: caddyfile} if caddyfile else {})
        | ({backup_image.DOCKERFILE: backup_dockerfile} if backup_dockerfile else {})
    )
