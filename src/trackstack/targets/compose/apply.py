"""The stack's lifecycle: render, build, up, wait, stop, down, reset.

Each function takes a validated `Project`; tasks.py only wires flags to them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from trackstack import backup_image, database, engine, mlflow_gc, probes, tls
from trackstack.console import concurrently, indent, say, write_files
from trackstack.engine import DockerError, EngineFeatures
from trackstack.errors import TrackstackError
from trackstack.mlflow_image import DOCKERFILE, DOCKERFILE_LABEL, build_digest, warn_of_artifact_downloads
from trackstack.ports import busy_ports
from trackstack.problems import SettingsError
from trackstack.project import Project
from trackstack.settings import Settings
from trackstack.targets.compose import backup, migrate, seed
from trackstack.targets.compose.credentials import apply_pgadmin_login
from trackstack.targets.compose.render import PGADMIN_DOCKERFILE, pgadmin_build_digest, render_all
from trackstack.targets.compose.state import raise_unhealthy, service_names, wait_ready


def write_generated(project: Project, features: EngineFeatures) -> list[str]:
    """Render every generated file and write those whose text changed; return their names."""
    certificate = None
    if project.settings.mlflow_behind_proxy:  # LAN mode: the proxy's certificate, made or checked now
        certificate = tls.ensure(project.root, project.settings).for_proxy(project.root)
    return write_files(project.root, render_all(project.settings, features, certificate))


def render(project: Project) -> EngineFeatures:
    features = engine.check_docker()
    changed = write_generated(project, features)
    say(f"rendered {', '.join(changed)}" if changed else "generated files are up to date")
    return features


def ensure_rendered(project: Project) -> None:
    """Tasks that only talk to Compose still need its file: write it if it is missing."""
    if not project.compose_file.exists():
        write_generated(project, engine.check_docker())


@dataclass(frozen=True)
class LocalImage:
    """An image Compose builds from a generated Dockerfile, labelled with what it was built from."""

    service: str
    image: str
    digest: str  # the label an image from the current Dockerfile carries
    duration: str  # how long a first build takes, for the progress line
    base: str = ""  # a pinned image it is built FROM, whose tag a pull may move to new contents

    def is_current(self) -> bool:
        """Built from the current Dockerfile and, when the base is here, from the base's layers."""
        label, base, layers = concurrently(
            lambda: engine.image_label(self.image, DOCKERFILE_LABEL),
            lambda: engine.image_layers(self.base) if self.base else None,
            lambda: engine.image_layers(self.image) if self.base else None,
        )
        if label != self.digest:
            return False
        if base is None:  # no base to compare (or none pulled): the label decides
            return True
        return bool((layers or [])[: len(base)] == base)


def built_images(settings: Settings) -> dict[str, str]:
    """The images trackstack builds, by the service that runs each (the scheduled gc runs MLflow's)."""
    images = {"mlflow": settings.mlflow_image, "pgadmin": settings.pgadmin_local_image}
    images |= {backup_image.SERVICE: backup_image.local_image(settings)} if settings.backup_schedule else {}
    return images | ({mlflow_gc.SERVICE: settings.mlflow_image} if settings.mlflow_gc_schedule else {})


def scheduled_services(settings: Settings) -> tuple[str, ...]:
    """The services that run a schedule of `.env`: the backup (BACKUP_SCHEDULE), gc (MLFLOW_GC_SCHEDULE)."""
    return (*((backup_image.SERVICE,) if settings.backup_schedule else ()),
            *((mlflow_gc.SERVICE,) if settings.mlflow_gc_schedule else ()))  # fmt: skip


def stack_services(settings: Settings) -> tuple[str, ...]:
    """The services of the compose file: the table's, and those of the schedules `.env` sets."""
    return (*service_names(settings), *scheduled_services(settings))


def local_images(project: Project) -> tuple[LocalImage, ...]:
    settings, root = project.settings, project.root
    mlflow = build_digest(settings, (root / DOCKERFILE).read_text(encoding="utf-8"))
    pgadmin = pgadmin_build_digest((root / PGADMIN_DOCKERFILE).read_text(encoding="utf-8"))
    images = (
        LocalImage("mlflow", settings.mlflow_image, mlflow, "a first build downloads MLflow: a few minutes"),
        LocalImage("pgadmin", settings.pgadmin_local_image, pgadmin, "pgAdmin's code compiled: 10-20 s",
                   settings.pgadmin_image),
    )  # fmt: skip
    if not settings.backup_schedule:
        return images
    digest = backup_image.build_digest((root / backup_image.DOCKERFILE).read_text(encoding="utf-8"))
    backup = LocalImage(backup_image.SERVICE, backup_image.local_image(settings), digest,
                        "Python and boto3 from Debian: a minute", settings.postgres_image)  # fmt: skip
    return (*images, backup)


def build(project: Project, *, force: bool = False) -> None:
    """Build the images trackstack makes (MLflow; pgAdmin compiled) unless they are current."""
    images = local_images(project)
    current = concurrently(*(image.is_current for image in images))
    stale = [image for image, fresh in zip(images, current, strict=True) if force or not fresh]
    for image in images:
        if image not in stale:
            say(f"image {image.image} is up to date")
    if not stale:
        return
    for image in stale:
        say(f"building the {image.service} image {image.image} ({image.duration})")
    started = time.monotonic()
    # One build command: Compose builds the images side by side.
    engine.compose(project, "build", *(["--no-cache"] if force else []), *(image.service for image in stale))
    say(f"built {', '.join(image.image for image in stale)} in {time.monotonic() - started:.0f}s")


def check_ports(project: Project, running: set[str] | None = None) -> None:
    """Refuse to start when a port this stack would publish is taken by someone else."""

    problems = busy_ports(project.settings, engine.running_services(project) if running is None else running)
    if problems:
        raise SettingsError(project.env_file, problems)


def preflight(project: Project) -> tuple[EngineFeatures, set[str]]:
    """The blocking checks of `invoke doctor` and the Postgres volume's version, run before `up`
    changes anything, all at once; the engine's features and the services running now."""
    from trackstack import doctor

    features, architecture, disk, running, _ = concurrently(
        engine.check_docker,
        doctor.check_architecture,
        lambda: doctor.check_disk(project.root),
        lambda: engine.running_services(project),
        # Last: an engine that does not answer is the error to report first.
        lambda: migrate.check_postgres_volume(project),
    )
    blockers = [check for check in (architecture, disk) if check.blocking]
    if blockers:
        raise TrackstackError("\n".join(f"{c.name}: {c.detail}. Fix: {c.fix}." for c in blockers))
    check_ports(project, running)
    warn_of_artifact_downloads(project.settings)
    return features, running


@dataclass(frozen=True)
class StartReport:
    """How long `invoke up` took to each milestone, for people and for the benchmark."""

    ready: float  # seconds from the start until every service answered and seeding was done
    answered: dict[str, float]  # seconds from the start until each service answered on its health endpoint
    seeded: tuple[str, ...]  # what seeding did, one line per step
    started_containers: bool  # False when everything already ran as configured


def start(project: Project, *, timeout: float = 300) -> StartReport:
    """All of `invoke up` but printing the URLs: render, build, start, wait until ready, seed.

    Seeding runs the moment its service answers: the bucket as soon as the artifact store does, pgAdmin's
    check when pgAdmin does, while the others are still starting.
    """

    started = time.monotonic()
    features, running = preflight(project)
    changed = write_generated(project, features)
    say(f"rendered {', '.join(changed)}" if changed else "generated files are up to date")
    build(project)
    seeded: list[str] = []

    def note(line: str) -> None:
        say(line)
        seeded.append(line)

    def note_all(*lines: str) -> None:
        for line in lines:
            note(line)

    new_pgadmin_volume = False

    def pgadmin_ready() -> None:
        # The login check and the (read-only) server listing are independent reads: ask both
        # at once. A login that had to change first makes the listing stale: read it again.
        applied, listed = concurrently(
            lambda: apply_pgadmin_login(project, new_volume=new_pgadmin_volume),
            lambda: seed.entries_in_config_db(project),
        )
        if applied:
            note(applied)
        note(seed.seed_pgadmin(project, listed=None if applied else listed))

    on_ready: dict[str, Callable[[], None]] = {
        "minio": lambda: note_all(seed.bucket_line(project.settings), seed.grant_store(project)),
        "pgadmin": pgadmin_ready,
    }
    if running_as_configured(project, running):
        say("every service already runs as configured")
        concurrently(*on_ready.values())  # only the seeding checks: nothing to start or wait for
        return StartReport(
            ready=time.monotonic() - started, answered={}, seeded=tuple(seeded), started_containers=False
        )
    say("starting the stack")
    existing = engine.volumes(project)
    new_volume = {
        service.name: f"{project.name}_{service.volume.name}" not in existing
        for service in project.settings.services
        if service.volume
    }
    new_pgadmin_volume = new_volume["pgadmin"]
    # MLflow needs its own role, owning its databases (made or moved as the superuser: a new volume
    # has none, an older one the superuser's tables), Postgres to accept the .env password (an older
    # volume may hold another) and its schema at MLflow's version; the artifact store and pgAdmin need
    # nothing, so they start with Postgres and MLflow follows the moment Postgres answers. MLflow's
    # container may still be the one an earlier `stop` left exited; the proxy (LAN mode) goes with it.
    with_mlflow = tuple(name for name in service_names(project.settings) if name in ("mlflow", "proxy"))
    later: set[str] = set(with_mlflow)
    _compose_up(project, "postgres", "minio", "pgadmin")

    def start_mlflow() -> None:
        note(seed.grant_database(project))
        if not new_volume["postgres"]:
            migrate.before_start(project, backup.write)  # an older MLflow schema: back up, upgrade once, then start
        _compose_up(project, *with_mlflow)
        later.difference_update(with_mlflow)

    on_ready["postgres"] = start_mlflow
    waiting_from = time.monotonic() - started
    answered = wait_ready(
        project, timeout=timeout, on_ready=on_ready, probe=_probe_syncing_password(project), later=later
    )
    if project.settings.backup_schedule:
        _compose_up(project, backup_image.SERVICE)
        say(f"scheduled backups ({project.settings.backup_schedule}, UTC) to {project.settings.backup_dest}")
    if project.settings.mlflow_gc_schedule:
        _compose_up(project, mlflow_gc.SERVICE)
        say(f"scheduled mlflow gc ({project.settings.mlflow_gc_schedule}, UTC) of runs deleted "
            f"{project.settings.mlflow_gc_older_than} ago")  # fmt: skip
    return StartReport(
        ready=time.monotonic() - started,
        answered={name: waiting_from + seconds for name, seconds in answered.items()},
        seeded=tuple(seeded),
        started_containers=True,
    )


def running_as_configured(project: Project, running: set[str] | None = None) -> bool:
    """Every service runs and is healthy, from the configuration and image `up` would use now.

    `running`: the services that had a running container a moment ago (preflight), when known; if
    one is missing, the answer is no without asking Compose (a cold or warm start: no containers).
    """
    services = stack_services(project.settings)
    if running is not None and not running >= set(services):
        return False
    images = built_images(project.settings)
    found, wanted, *ids = concurrently(
        lambda: engine.ps(project),
        lambda: engine.config_hashes(project),
        *(lambda image=image: engine.image_id(image) for image in images.values()),
    )
    states = {state.service: state for state in found}
    if set(states) != set(services) or not all(state.ready for state in states.values()):
        return False
    if any(states[name].config_hash != wanted.get(name) for name in services):
        return False
    # A rebuilt image: Compose recreates the containers of the services built from it.
    return all(image_id and states[name].image_id == image_id for name, image_id in zip(images, ids, strict=True))


def _probe_syncing_password(project: Project) -> Callable[[str], probes.Readiness]:
    """Ask a service whether it is ready; Postgres refusing the .env password gets it set first.

    The image reads POSTGRES_PASSWORD only when it creates the database, so a password
    changed in .env is applied over the container's trusted local socket.
    """

    def probe(service: str) -> probes.Readiness:
        answer = probes.readiness(project.settings, service)
        if answer is probes.Readiness.WRONG_PASSWORD:
            say("Postgres still has the old password: setting the one in .env")
            database.sync_password(project)
            answer = probes.readiness(project.settings, service)
        return answer

    return probe


def _compose_up(project: Project, *services: str) -> None:
    """Create or update `services`; `wait_ready` then asks each whether it answers."""
    args = ("up", "--detach", "--remove-orphans", *services)
    result = engine.compose(project, *args, capture=True, check=False)
    if result.returncode == 0:
        return
    if "Pulling" in result.stderr or "pull access denied" in result.stderr:
        raise DockerError(
            f"an image could not be pulled:\n{indent(result.stderr.strip())}\n"
            "Fix: check the network connection and the *_IMAGE references in .env (`docker pull REF` tells more)."
        )
    raise_unhealthy(project, engine.ps(project), result.stderr.strip())


def stop(project: Project) -> None:
    ensure_rendered(project)
    engine.compose(project, "stop")
    say("stopped; data kept. `invoke up` starts it again")
    if project.settings.restart_policy == "always":
        # Docker's documented rule for `always`: a stopped container starts with the daemon.
        say("note: RESTART_POLICY=always, so Docker starts it again when the Docker daemon restarts "
            "(a reboot); `invoke down` keeps it down, or set RESTART_POLICY=unless-stopped")  # fmt: skip


def down(project: Project) -> None:
    ensure_rendered(project)
    engine.compose(project, "down", "--remove-orphans")
    say("containers and network removed; volumes kept. `invoke up` brings it back with the same data")


def delete_volumes(project: Project) -> list[str]:
    doomed = engine.volumes(project)
    engine.compose(project, "down", "--volumes", "--remove-orphans")
    return doomed


def confirm_reset(project: Project, *, yes: bool, summary: str, ask: Callable[[str], str] = input) -> None:
    """Say what will be deleted and ask; without a terminal only `--yes` will do."""
    doomed = engine.volumes(project)
    listing = ", ".join(doomed) if doomed else "(no volumes yet)"
    say(f"reset deletes volumes {listing}: {summary}")
    if yes:
        return
    if not sys.stdin.isatty():
        raise TrackstackError("refusing to delete data without a terminal to confirm on. Fix: pass --yes.")
    answer = ask(f"Type the project name ({project.name}) to delete its data: ").strip()
    if answer != project.name:
        raise TrackstackError("reset cancelled; nothing was deleted.")


def gc_args(settings: Settings) -> list[str]:
    """`docker compose exec` of `mlflow gc` once in MLflow's own container: its role, its S3 user and the
    admin's password are in that container's environment already; only the tracking server is added."""
    variables = [
        part for name, value in mlflow_gc.exec_environment(settings).items() for part in ("-e", f"{name}={value}")
    ]
    return ["exec", "-T", *variables, "mlflow", *mlflow_gc.once_command(settings)]


def gc(project: Project) -> None:
    """Reclaim runs deleted more than MLFLOW_GC_OLDER_THAN ago, now; gc's output passed on."""
    result = engine.compose(project, *gc_args(project.settings), check=False)
    if result.returncode != 0:
        raise TrackstackError(
            f"mlflow gc failed (exit status {result.returncode}); its output is above. "
            "Fix: read it; `invoke logs --service mlflow` tells whether the tracking server refused it."
        )
