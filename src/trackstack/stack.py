"""The stack's lifecycle: render, build, up, wait, stop, down, reset.

Each function takes a validated `Project`; tasks.py only wires flags to them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from trackstack import database, engine, migrate
from trackstack.engine import DockerError, Project, ServiceState
from trackstack.errors import TrackstackError
from trackstack.render import DOCKERFILE, DOCKERFILE_LABEL, EngineFeatures, build_digest, render_all
from trackstack.services import SERVICE_NAMES


def say(message: str) -> None:
    print(f"trackstack: {message}", flush=True)


def write_generated(project: Project, features: EngineFeatures) -> list[str]:
    """Render every generated file and write those whose text changed; return their names."""
    changed = []
    for name, text in render_all(project.settings, features).items():
        path = project.root / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            _write_atomically(path, text)
            changed.append(name)
    return changed


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    temporary.replace(path)


def render(project: Project) -> EngineFeatures:
    features = engine.check_docker()
    changed = write_generated(project, features)
    say(f"rendered {', '.join(changed)}" if changed else "generated files are up to date")
    return features


def ensure_rendered(project: Project) -> None:
    """Tasks that only talk to Compose still need its file: write it if it is missing."""
    if not project.compose_file.exists():
        write_generated(project, engine.check_docker())


def image_is_current(project: Project) -> bool:
    dockerfile = (project.root / DOCKERFILE).read_text(encoding="utf-8")
    expected = build_digest(project.settings, dockerfile)
    return engine.image_label(project.settings.mlflow_image, DOCKERFILE_LABEL) == expected


def build(project: Project, *, force: bool = False) -> None:
    """Build the MLflow image unless an image from the same Dockerfile is already there."""
    image = project.settings.mlflow_image
    if not force and image_is_current(project):
        say(f"image {image} is up to date")
        return
    say(f"building the mlflow image {image} (a first build downloads MLflow: a few minutes)")
    started = time.monotonic()
    args = ["build", "--no-cache", "mlflow"] if force else ["build", "mlflow"]
    engine.compose(project, *args)
    say(f"built {image} in {time.monotonic() - started:.0f}s")


def check_ports(project: Project) -> None:
    """Refuse to start when a port this stack would publish is taken by someone else."""
    from trackstack.ports import busy_ports
    from trackstack.problems import SettingsError

    problems = busy_ports(project.settings, engine.running_services(project))
    if problems:
        raise SettingsError(project.env_file, problems)


def preflight(project: Project) -> EngineFeatures:
    """The blocking checks of `invoke doctor`, run before `up` changes anything."""
    from trackstack import doctor

    features = engine.check_docker()
    blockers = [check for check in (doctor.check_architecture(), doctor.check_disk(project.root)) if check.blocking]
    if blockers:
        raise TrackstackError("\n".join(f"{c.name}: {c.detail}. Fix: {c.fix}." for c in blockers))
    check_ports(project)
    return features


def up(project: Project, *, timeout: float = 300) -> float:
    """Render, build, start and wait; return the seconds until every service was healthy."""
    started = time.monotonic()
    features = preflight(project)
    changed = write_generated(project, features)
    say(f"rendered {', '.join(changed)}" if changed else "generated files are up to date")
    build(project)
    say("starting the stack")
    # Postgres before MLflow, so that a password changed in .env is applied before MLflow
    # connects; MinIO and pgAdmin (the slowest to start) need neither, so they start with it.
    _compose_up(project, "postgres", "minio", "pgadmin")
    wait_healthy(project, services=("postgres",), timeout=timeout)
    database.sync_password(project)
    migrate.before_start(project)  # issue 11: back up and upgrade an older MLflow schema first
    _compose_up(project)
    wait_healthy(project, timeout=timeout)
    return time.monotonic() - started


@dataclass(frozen=True)
class StartReport:
    """How long `invoke up` took to each milestone, for people and for the benchmark."""

    healthy: float  # seconds from the start until every service was healthy
    ready: float  # ... until seeding was done too
    seeded: tuple[str, ...]  # what seeding did, one line per step


def start(project: Project, *, timeout: float = 300) -> StartReport:
    """Bring the stack up and seed it: all of `invoke up` but printing the URLs."""
    from trackstack import seed

    started = time.monotonic()
    healthy = up(project, timeout=timeout)
    lines = tuple(seed.seed(project))
    for line in lines:
        say(line)
    return StartReport(healthy=healthy, ready=time.monotonic() - started, seeded=lines)


def _compose_up(project: Project, *services: str) -> None:
    result = engine.compose(project, "up", "--detach", "--remove-orphans", *services, capture=True, check=False)
    if result.returncode == 0:
        return
    if "Pulling" in result.stderr or "pull access denied" in result.stderr:
        raise DockerError(
            f"an image could not be pulled:\n{_indent(result.stderr.strip())}\n"
            "Fix: check the network connection and the *_IMAGE references in .env (`docker pull REF` tells more)."
        )
    _raise_unhealthy(project, engine.ps(project), result.stderr.strip())


def wait_healthy(
    project: Project,
    *,
    services: tuple[str, ...] = SERVICE_NAMES,
    timeout: float = 300,
    poll: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[ServiceState]:
    """Poll until every service is running and healthy; fail fast on an unhealthy or dead one."""
    started = clock()
    last_report = ""
    last_time = started
    while True:
        states = [state for state in engine.ps(project) if state.service in services]
        by_service = {state.service: state for state in states}
        missing = [name for name in services if name not in by_service]
        waiting = [s for s in states if not s.ready]
        elapsed = clock() - started
        if not missing and not waiting:
            say(f"{', '.join(services)} healthy after {elapsed:.0f}s")
            return states
        # A container that restarts while we wait is crash-looping under the restart policy.
        broken = [s for s in states if s.health == "unhealthy" or s.state in ("exited", "dead", "restarting")]
        if broken:
            _raise_unhealthy(project, broken)
        if elapsed > timeout:
            _raise_unhealthy(project, waiting, f"not healthy after {timeout:.0f}s")
        report = ", ".join(f"{s.service} ({s.health or s.state})" for s in waiting) + "".join(
            f", {name} (not created)" for name in missing
        )
        now = clock()
        if report != last_report or now - last_time >= 15:
            say(f"waiting for {report} [{elapsed:.0f}s]")
            last_report, last_time = report, now
        sleep(poll)


def _raise_unhealthy(project: Project, states: Iterable[ServiceState], detail: str = "") -> None:
    parts = [detail] if detail else []
    for state in states:
        if state.ready:
            continue
        condition = state.health or state.state
        if state.state == "exited":
            condition = f"exited with code {state.exit_code}"
        parts.append(
            f"service {state.service} is {condition}; its last log lines:\n"
            + _indent(engine.logs_tail(project, state.service))
        )
    parts.append("Fix: read the log lines above; `invoke logs --service NAME` shows more.")
    raise DockerError("\n".join(parts))


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" for line in text.splitlines()) or "    (no output)"


def stop(project: Project) -> None:
    ensure_rendered(project)
    engine.compose(project, "stop")
    say("stopped; data kept. `invoke up` starts it again")


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


def require_running(project: Project) -> None:
    """Fail with one clear message when the stack is not up."""
    try:
        states = engine.ps(project)
    except DockerError as error:
        raise TrackstackError(f"stack not running: run `invoke up` ({error})") from None
    down_services = [name for name in SERVICE_NAMES if not any(s.service == name and s.ready for s in states)]
    if down_services:
        raise TrackstackError(f"stack not running ({', '.join(down_services)} not healthy): run `invoke up`")
