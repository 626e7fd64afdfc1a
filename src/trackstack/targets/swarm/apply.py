"""`invoke deploy`, `undeploy` and swarm `status`: the side effects of a shared server on Docker Swarm.

The engine is the one the docker CLI talks to (`DOCKER_HOST` or the current Docker context); it
must be a swarm manager. Rendering is `render.py`'s, reading the swarm's state `state.py`'s.
"""

from __future__ import annotations

import functools
import time
from dataclasses import replace

from trackstack import backup_image, engine, privileges, shared_server, tls, upgrades
from trackstack.auth import Server
from trackstack.console import concurrently, indent, relay, say, write_files
from trackstack.engine import DockerError
from trackstack.mlflow_image import build_image
from trackstack.project import Project
from trackstack.services import MLFLOW, SWARM_SERVICES
from trackstack.targets.base import print_links
from trackstack.targets.swarm import render as swarm
from trackstack.targets.swarm import state as swarmstate
from trackstack.targets.swarm import views as swarmviews
from trackstack.targets.swarm.state import DeployError


def deploy(project: Project, *, timeout: float = 600) -> None:
    """Build and push MLflow's image, create the secrets, prepare the database once, deploy, wait."""
    settings = project.settings
    started = time.monotonic()
    swarmstate.require_manager()
    data_node = swarmstate.data_node()
    say(f"data node: {data_node.hostname} ({data_node.address})")
    image = build_image(project)
    if settings.backup_schedule:
        backup_image.build_for_shared_server(project)
    certificate = server_certificate(project)
    ensure_secrets(project)
    mlflow = swarm.service_name(settings, MLFLOW.name)
    others = tuple(swarm.service_name(settings, s.name) for s in SWARM_SERVICES if s.name != MLFLOW.name)
    running = swarmstate.desired_replicas(mlflow) > 0
    if not running:
        # A first deploy (or one after `undeploy`): nothing of MLflow may touch an empty database
        # before the prepare job has created its tables.
        say("deploying Postgres, MinIO, pgAdmin and the proxy; MLflow waits for its database")
        stack_deploy(project, image=image, mlflow_replicas=0, certificate=certificate)
        swarmstate.wait_converged(project.name, others, timeout=timeout)
    grant_store(project)
    if needs_prepare(project, image, running=running):
        migrate(project, image, running=running)
    else:
        say("MLflow's database, logins and bucket were prepared for this image and these settings: no prepare job")
    say(f"deploying MLflow: {settings.mlflow_replicas} replicas of {image}")
    stack_deploy(project, image=image, mlflow_replicas=settings.mlflow_replicas, certificate=certificate)
    swarmstate.wait_converged(project.name, (*others, mlflow), timeout=timeout)
    remove_unused_secrets(project)
    say(f"deployed in {time.monotonic() - started:.0f}s; {trust_hint(project)}")


def server_certificate(project: Project) -> tls.ProxyCertificate | None:
    """The proxy's certificate files (trackstack's own, issued or reused; or .env's), None with ACME."""
    return tls.ensure(project.root, project.settings).for_proxy(project.root)


def trust_hint(project: Project) -> str:
    """What clients verify the proxy's certificate with."""
    chosen = tls.mode(project.settings)
    if chosen == "internal":
        return (f"the CA of the proxy's certificate, for this server's names only: {tls.ca_file(project.settings)} "
                "(give students that file)")  # fmt: skip
    return "the proxy's certificate is " + ("TLS_CERT_FILE's" if chosen == "files" else "a public one (ACME)")


def ensure_secrets(project: Project) -> None:
    """Create the Docker secrets that do not exist yet; their values go through stdin, never a file."""
    settings = project.settings
    existing = swarmstate.project_secrets(settings.compose_project_name)
    for target, name in shared_server.secret_names(settings).items():
        if name in existing:
            continue
        value = getattr(settings, target).get_secret_value()
        engine.run(["docker", "secret", "create", "--label", f"{swarm.PROJECT_LABEL}={settings.compose_project_name}",
                    name, "-"], capture=True, input_text=value)  # fmt: skip
        say(f"created secret {name} ({target.upper()} from .env)")


def remove_unused_secrets(project: Project) -> None:
    """Secrets of older values: removed once no service uses them (Docker refuses while one does)."""
    settings = project.settings
    wanted = set(shared_server.secret_names(settings).values())
    for name in sorted(swarmstate.project_secrets(settings.compose_project_name) - wanted):
        if engine.run(["docker", "secret", "rm", name], capture=True, check=False).returncode == 0:
            say(f"removed secret {name} (a value .env no longer has)")


def stack_deploy(
    project: Project, *, image: str, mlflow_replicas: int, certificate: tls.ProxyCertificate | None
) -> None:
    files = swarm.render_swarm(project.settings, image=image, mlflow_replicas=mlflow_replicas, certificate=certificate)
    write_files(project.root, files)
    result = engine.run(
        ["docker", "stack", "deploy", "--with-registry-auth", "--compose-file",
         str(project.root / swarm.STACK_FILE), project.name],
        capture=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise DeployError(
            f"`docker stack deploy` failed:\n{indent(result.stderr.strip())}\n"
            f"Fix: read the message above; {swarm.STACK_FILE} is what was deployed."
        )


def run_job(project: Project, task: str, args: list[str]) -> tuple[str, str]:
    """Create the one-shot service `args` (named for `task`), wait for it, remove it: (state, output)."""
    name = swarm.service_name(project.settings, task)
    engine.run(["docker", "service", "rm", name], capture=True, check=False)  # one left by an interrupted deploy
    engine.run([*args[:3], "--name", name, *args[3:]], capture=True)
    try:
        return swarmstate.wait_job(name)
    finally:
        engine.run(["docker", "service", "rm", name], capture=True, check=False)


def needs_prepare(project: Project, image: str, *, running: bool) -> bool:
    """Whether the prepare job must run: always unless MLflow runs, on a job of the same fingerprint.

    Running replicas whose label is this deploy's fingerprint were started after a job with the same
    image, scripts, settings and secrets completed against this database and bucket; a job that
    failed left the label as it was, and after `undeploy` (or with 0 replicas) the job runs again.
    """
    if not running:
        return True
    name = swarm.service_name(project.settings, MLFLOW.name)
    prepared = swarmstate.service_labels(name).get(swarm.PREPARED_LABEL)
    return prepared != swarm.prepare_fingerprint(project.settings, image=image)


def migrate(project: Project, image: str, *, running: bool) -> None:
    """The prepare job; over replicas of another MLflow version, after a backup and with them stopped."""
    deployed = swarmstate.services(project.name).get(swarm.service_name(project.settings, MLFLOW.name))
    old_version = upgrades.version_change(deployed.image if running and deployed else None,
                                          project.settings.mlflow_version)  # fmt: skip
    if old_version is None:
        prepare(project, image)
        return
    from trackstack.targets.swarm.backup import SwarmData  # it builds on this module (its restore prepares)

    old = replace(project, settings=project.settings.model_copy(update={"mlflow_version": old_version}))
    upgrades.upgrade(SwarmData(old), new_version=project.settings.mlflow_version,
                     migrate=functools.partial(prepare, project, image), into=project.root / "backups")  # fmt: skip


def prepare(project: Project, image: str) -> None:
    """Run the one-shot job that creates or upgrades MLflow's tables, its logins and the bucket."""
    say("preparing MLflow's database and bucket (one-shot job)")
    state, logs = run_job(project, "prepare", swarm.prepare_job_args(project.settings, image=image))
    relay(logs)
    if state != "complete":
        raise DeployError(
            f"the prepare job {state}; nothing of MLflow was started or changed. Its output:\n{indent(logs)}\n"
            "Fix: read the output above."
        )


def grant_store(project: Project) -> None:
    """MLflow's own S3 user, allowed MLFLOW_BUCKET's objects only, its key MLFLOW_S3_SECRET_KEY's: made, or
    brought back to `.env`, on every deploy, before the prepare job checks that it reaches the bucket.

    MinIO: a one-shot job of MinIO's image (`mc`), secrets as files. SeaweedFS: `weed shell` inside its
    own container (its parts talk on loopback only), reached on the engine in use, which must be the data
    node's (as for backups); the identity travels on stdin."""
    settings = project.settings
    if settings.artifact_store == "seaweedfs":
        container = swarmstate.task_container(settings, settings.store.name)
        engine.run(["docker", "exec", "-i", container, *privileges.WEED_SHELL], capture=True,
                   input_text=privileges.seaweedfs_configure(settings))  # fmt: skip
        say(f"SeaweedFS: MLflow's user {settings.mlflow_s3_access_key} may use bucket {settings.mlflow_bucket} only")
        return
    state, logs = run_job(project, "grant", swarm.store_grant_job_args(settings))
    if state != "complete":
        raise DeployError(
            f"making MLflow's S3 user failed (job {state}); nothing of MLflow was changed. Its output:\n"
            f"{indent(logs)}\nFix: read the output above; `invoke logs --service minio` shows MinIO's side."
        )
    relay(logs)


def psql(project: Project, sql: str, *, database: str | None = None) -> str:
    """Run SQL in the deployed stack's database (a one-shot job) and return psql's unaligned output."""
    state, logs = run_job(
        project, "psql", swarm.psql_job_args(project.settings, sql, database or project.settings.postgres_db)
    )
    if state != "complete":
        raise DeployError(f"psql in the deployed stack {state}:\n{indent(logs)}")
    return logs


def gc(project: Project) -> None:
    """`mlflow gc` once, now: a one-shot job in the deployed MLflow image; its output passed on."""
    deployed = swarmstate.services(project.name).get(swarm.service_name(project.settings, MLFLOW.name))
    if deployed is None:
        raise DeployError("MLflow is not deployed. Fix: `invoke deploy` first.")
    state, logs = run_job(project, "gc", swarm.gc_job_args(project.settings, image=deployed.image))
    relay(logs)
    if state != "complete":
        raise DeployError(f"mlflow gc {state}; its output is above. Fix: read it.")


def server(project: Project) -> Server:
    """MLflow as `invoke user.*` reaches it on the deployed stack: through the proxy, trusting its CA."""
    return Server(swarm.mlflow_url(project.settings), client_verify(project), psql, apply="invoke deploy")


def client_verify(project: Project) -> bool | str:
    """How a client here verifies the proxy: trackstack's CA file, or the system's trust store."""
    if tls.mode(project.settings) == "internal":
        return str(project.root / tls.ca_file(project.settings))
    return True


def undeploy(project: Project, *, timeout: float = 120) -> None:
    """Remove the stack's services, network and configs; keep volumes and secrets."""
    swarmstate.require_manager()
    engine.run(["docker", "stack", "rm", project.name], capture=True)
    swarmstate.wait_removed(project.name, timeout=timeout)
    say("services removed; volumes (on the data node) and secrets kept. `invoke deploy` brings it back with the data")


def print_urls(project: Project) -> None:
    settings = project.settings
    print_links(swarmviews.links(settings, swarmstate.data_node().address), hints=False)
    clients = f"  clients: MLFLOW_TRACKING_URI={swarm.mlflow_url(settings)}"
    if tls.mode(settings) == "internal":
        clients += (f" and MLFLOW_TRACKING_SERVER_CERT_PATH={tls.ca_file(settings)} (the proxy's CA, for this "
                    "server's names only: give students that file)")  # fmt: skip
    print(f"  logins: MLFLOW_ADMIN_USER / MLFLOW_ADMIN_PASSWORD from .env; students: `invoke user.add NAME`\n"
          f"{clients}", flush=True)  # fmt: skip


def browser_urls(project: Project) -> dict[str, str]:
    """The web UIs of the deployed stack that `invoke open` opens."""
    return swarmviews.browser_urls(project.settings, swarmstate.data_node().address)


def logs(project: Project, service: str, *, follow: bool, tail: int) -> None:
    """Print the deployed services' logs; with --follow, every service's at once."""
    commands = swarmviews.log_commands(project.settings, service, follow=follow, tail=tail)
    if follow:
        concurrently(*(functools.partial(engine.run, command, check=False) for command in commands))
        return
    for command in commands:
        engine.run(command, check=False)


def deployed(project: Project) -> bool:
    """Whether this project is deployed to the swarm of the Docker engine in use (the tasks' swarm mode)."""
    try:
        return bool(swarmstate.services(project.name))
    except DockerError:  # not a swarm manager, or no engine: the compose stack is meant
        return False


STATUS_HEADER = ("SERVICE", "REPLICAS", "IMAGE")


def status_rows(project: Project) -> list[tuple[str, ...]] | None:
    """One row per service of the deployed stack (replicas running/wanted); None when nothing is deployed."""
    try:
        found = swarmstate.services(project.name)
    except DockerError:
        return None
    if not found:
        return None
    rows: list[tuple[str, ...]] = []
    for service in SWARM_SERVICES:
        state = found.get(swarm.service_name(project.settings, service.name))
        replicas = f"{state.running}/{state.desired}" if state else "absent"
        rows.append((service.name, replicas, state.image if state else "-"))
    return rows
