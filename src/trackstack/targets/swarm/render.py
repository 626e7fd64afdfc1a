"""Docker Swarm, pure: the stack file, the proxy's Caddyfile, names of secrets and the prepare job.

Settings in, text and argument lists out; `apply.py` writes the files and runs Docker. The
same service table and templates as compose: a service's ports, volume, probe and secrets come
from `services.py`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from trackstack import backup_image, containers, mlflow_gc, privileges, tls
from trackstack.containers import PGADMIN_SERVER_NAME, auth_start
from trackstack.services import MINIO, MLFLOW, PREPARE_SECRETS, PROXY, swarm_stack
from trackstack.settings import Settings
from trackstack.shared_server import (
    deploy_problems,
    fingerprint,
    mlflow_environment,
    mlflow_server_args,
    pgadmin_environment,
    prepare_command,
    prepare_environment,
    render_servers_json,
    secret_files,
    secret_names,
    secret_variables_entrypoint,
    store_environment,
)
from trackstack.templating import render_template
from trackstack.tls import ProxyCertificate

__all__ = ["deploy_problems"]  # `.env`'s checks for a deploy, as the target names them

STACK_FILE = "stack.yaml"
CADDYFILE = tls.CADDYFILE
SWARM_SERVERS_FILE = "pgadmin-servers-swarm.json"
# The node label that places Postgres, MinIO, pgAdmin, the proxy and their volumes.
DATA_LABEL = "trackstack.data"
DATA_CONSTRAINT = f"node.labels.{DATA_LABEL} == true"
PROXY_HEALTH_PORT = PROXY.probe.port
# Labels trackstack puts on what it creates beside the stack: secrets, the prepare job.
PROJECT_LABEL = "org.trackstack.project"
# On MLflow's service: what the last prepare job it runs after was made of (prepare_fingerprint).
PREPARED_LABEL = "org.trackstack.prepared"
STACK_LABEL = "com.docker.stack.namespace"  # what `docker stack rm` removes


def content_name(project: str, kind: str, text: str) -> str:
    """A Docker config's name: configs cannot change, so a new content is a new name."""
    return f"{project}_{kind}_{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def service_name(settings: Settings, service: str) -> str:
    return f"{settings.compose_project_name}_{service}"


def published(settings: Settings) -> dict[str, bool]:
    """Whether each service publishes its ports on Swarm."""
    services = swarm_stack(settings.artifact_store)
    shared = {service.name: settings.bind(service.name) == "0.0.0.0" for service in services}  # noqa: S104
    rule = {"always": True, "never": False}
    return {service.name: rule.get(service.swarm_published, shared[service.name]) for service in services}


def mlflow_url(settings: Settings) -> str:
    """Where students reach MLflow: the proxy, at the first public name."""
    port = settings.ports[PROXY.endpoints[0].port_key]
    return f"https://{settings.public_hosts[0]}" + ("" if port == 443 else f":{port}")


def render_caddyfile(settings: Settings) -> str:
    """The proxy's Caddyfile: TLS for MLFLOW_PUBLIC_HOSTS, requests spread over every MLflow task."""
    return tls.render_caddyfile(
        settings,
        sites=tls.sites(settings),
        upstream=f"tasks.{service_name(settings, MLFLOW.name)}:{MLFLOW.port}",
        dynamic_upstream=True,
        health_port=PROXY_HEALTH_PORT,
    )


@dataclass(frozen=True)
class Config:
    name: str
    file: str


def render_stack(
    settings: Settings,
    *,
    image: str,
    mlflow_replicas: int,
    caddyfile: str,
    servers_json: str,
    certificate: ProxyCertificate | None = None,
) -> str:
    project = settings.compose_project_name
    configs = {
        "caddyfile": Config(content_name(project, "caddyfile", caddyfile), f"./{CADDYFILE}"),
        "pgadmin-servers": Config(content_name(project, "pgadmin_servers", servers_json), f"./{SWARM_SERVERS_FILE}"),
    }
    services = swarm_stack(settings.artifact_store)
    return render_template(
        "swarm/stack.yaml.j2",
        s=settings,
        services={service.name: service for service in services},
        published=published(settings),
        volumes=[service.volume for service in services if service.volume],
        secret_files=secret_files,
        store_entrypoint=secret_variables_entrypoint(settings.store),
        store_environment=store_environment(settings),
        data_constraint=DATA_CONSTRAINT,
        restart_condition={"no": "none", "on-failure": "on-failure"}.get(settings.restart_policy, "any"),
        image=image,
        mlflow_replicas=mlflow_replicas,
        mlflow_labels={PREPARED_LABEL: prepare_fingerprint(settings, image=image)},
        mlflow_server=mlflow_server_args(settings),
        # Swarm fills in the task's slot (1..replicas); the entrypoint runs MLflow's periodic
        # jobs on slot 1 only, as MLflow asks of a deployment with several replicas.
        mlflow_environment=mlflow_environment(settings)
        | {"TRACKSTACK_AUTH_PREPARED": "true", "TRACKSTACK_TASK_SLOT": "{{.Task.Slot}}"},
        pgadmin_environment=pgadmin_environment(settings),
        auth_start=auth_start(),
        pgadmin_server_name=PGADMIN_SERVER_NAME,
        pgadmin_servers_path=containers.PGADMIN_SERVERS_PATH,
        configs=configs,
        secrets=secret_names(settings),
        certificate=certificate,
        proxy_cert=tls.PROXY_CERT,
        proxy_key=tls.PROXY_KEY,
        backup=backup_service(settings),
        gc=gc_service(settings, image),
    )


def backup_service(settings: Settings) -> dict[str, object] | None:
    """The scheduled backup as a service of the stack (BACKUP_SCHEDULE set), or None.

    Its secrets are files; a directory BACKUP_DEST is bound from the data node, where it runs (a
    bucket is the choice that leaves the node: docs/backups.md)."""
    if not settings.backup_schedule:
        return None
    secrets = {"POSTGRES_PASSWORD": "postgres_password", "STACK_S3_SECRET_KEY": "minio_root_password"}
    secrets |= {key: key.lower() for key in backup_image.secret_keys(settings)}
    return {
        "image": backup_image.registry_image(settings),
        "environment": backup_image.runner_environment(
            settings, target="swarm", dest=backup_image.container_dest(settings)
        )
        | {f"{variable}_FILE": f"/run/secrets/{target}" for variable, target in secrets.items()},
        "secrets": sorted(set(secrets.values())),
        "mount": None if backup_image.is_bucket(settings) else settings.backup_dest,
        "target": backup_image.MOUNT,
        "healthcheck": backup_image.HEALTHCHECK,
    }


def gc_secret_environment() -> dict[str, str]:
    """gc's secrets as `*_FILE` variables (the MLflow image's entrypoint reads them)."""
    return {f"{use.variable}_FILE": f"/run/secrets/{use.target}" for use in mlflow_gc.SHARED_SECRETS}


def gc_service(settings: Settings, image: str) -> dict[str, object] | None:
    """The scheduled `mlflow gc` as a service of the stack (MLFLOW_GC_SCHEDULE set), in MLflow's image, or None."""
    if not settings.mlflow_gc_schedule:
        return None
    return {
        "image": image,
        "command": mlflow_gc.loop_command(settings),
        "environment": mlflow_gc.environment(settings, shared=True) | gc_secret_environment(),
        "secrets": sorted({use.target for use in mlflow_gc.SHARED_SECRETS}),
        "healthcheck": mlflow_gc.HEALTHCHECK,
    }


def gc_job_args(settings: Settings, *, image: str) -> list[str]:
    """`invoke gc`: a one-shot job of `mlflow gc` in MLflow's image, with gc's secrets, on the stack's network."""
    secrets = secret_names(settings)
    args = [*_job(settings), "--network", f"{settings.compose_project_name}_backend"]
    for use in mlflow_gc.SHARED_SECRETS:
        args += ["--secret", f"source={secrets[use.target]},target={use.target}"]
    variables = mlflow_gc.environment(settings, shared=True) | gc_secret_environment()
    for variable, value in variables.items():
        args += ["--env", f"{variable}={value}"]
    return [*args, image, *mlflow_gc.once_command(settings)]


def render_swarm(
    settings: Settings, *, image: str, mlflow_replicas: int, certificate: ProxyCertificate | None = None
) -> dict[str, str]:
    """Every file `invoke deploy` writes, by name; `mlflow_replicas` is 0 until the prepare job ran;
    `certificate`: the proxy's files (None with ACME, where Caddy gets its own)."""
    caddyfile = render_caddyfile(settings)
    servers_json = render_servers_json(settings)
    stack = render_stack(settings, image=image, mlflow_replicas=mlflow_replicas, caddyfile=caddyfile,
                         servers_json=servers_json, certificate=certificate)  # fmt: skip
    return {STACK_FILE: stack, CADDYFILE: caddyfile, SWARM_SERVERS_FILE: servers_json}


def _job(settings: Settings) -> list[str]:
    """`docker service create` of a one-shot job (the caller adds --name); `docker stack rm` removes a leftover."""
    project = settings.compose_project_name
    return ["docker", "service", "create", "--detach", "--quiet", "--with-registry-auth",
            "--mode", "replicated-job", "--restart-condition", "none",
            "--label", f"{STACK_LABEL}={project}", "--label", f"{PROJECT_LABEL}={project}"]  # fmt: skip


def prepare_job_args(settings: Settings, *, image: str) -> list[str]:
    """The one-shot job that readies MLflow's database and bucket, with MLflow's secrets, on the stack's network."""
    secrets = secret_names(settings)
    args = [*_job(settings), "--network", f"{settings.compose_project_name}_backend"]
    for use in PREPARE_SECRETS:
        args += ["--secret", f"source={secrets[use.target]},target={use.target}"]
        args += ["--env", f"{use.variable}_FILE=/run/secrets/{use.target}"]
    for variable, value in prepare_environment(settings).items():
        args += ["--env", f"{variable}={value}"]
    return [*args, image, *prepare_command(settings)]


def prepare_fingerprint(settings: Settings, *, image: str) -> str:
    """A hash of the prepare job's whole command line, which holds what `shared_server.prepare_fingerprint`
    hashes (and the project's name): kept as it was, so that deployed stacks are not prepared again."""
    return fingerprint(prepare_job_args(settings, image=image))


def ca_file(settings: Settings) -> str:
    """The CA certificate clients are given (trackstack's own CA), in the project folder."""
    return tls.ca_file(settings)


def psql_job_args(settings: Settings, sql: str, database: str) -> list[str]:
    """A one-shot job that runs SQL with psql on the stack's network, its password from the secret's file."""
    secret = secret_names(settings)["postgres_password"]
    script = (
        'PGPASSWORD="$(cat /run/secrets/postgres_password)" exec psql --no-psqlrc --quiet -tA -v ON_ERROR_STOP=1 "$@"'
    )
    return [*_job(settings), "--network", f"{settings.compose_project_name}_backend",
            "--secret", f"source={secret},target=postgres_password", "--entrypoint", "sh",
            settings.postgres_image, "-c", script, "psql", "-h", "postgres", "-U", settings.postgres_user,
            "-d", database, "-c", sql]  # fmt: skip


STORE_API_PORT = next(e.container_port for e in MINIO.endpoints if e.port_key == "MINIO_API_PORT")


def store_grant_job_args(settings: Settings) -> list[str]:
    """MinIO: the one-shot job (MinIO's image, on the data node, which has it) whose `mc` makes MLflow's S3
    user and its bucket policy, with the root password and MLflow's key as secret files."""
    secrets = secret_names(settings)
    files = {key: f"/run/secrets/{key}" for key in ("minio_root_password", "mlflow_s3_secret_key")}
    command = privileges.mc_grant_command(settings, endpoint=f"http://{MINIO.name}:{STORE_API_PORT}",
                                          root_file=files["minio_root_password"],
                                          own_file=files["mlflow_s3_secret_key"])  # fmt: skip
    args = [*_job(settings), "--network", f"{settings.compose_project_name}_backend",
            "--constraint", DATA_CONSTRAINT, "--entrypoint", command[0]]  # fmt: skip
    for key in files:
        args += ["--secret", f"source={secrets[key]},target={key}"]
    return [*args, settings.image(MINIO), *command[1:]]
