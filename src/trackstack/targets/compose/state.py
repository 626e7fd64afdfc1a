"""What the compose stack says of itself: waiting until every service answers, and requiring that it runs."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Mapping

from trackstack import engine, probes
from trackstack.console import indent, say
from trackstack.engine import DockerError, ServiceState
from trackstack.errors import TrackstackError
from trackstack.project import Project
from trackstack.settings import Settings


def service_names(settings: Settings) -> tuple[str, ...]:
    """The Compose stack's services (the TLS proxy too in LAN mode)."""
    return tuple(service.name for service in settings.services)


def wait_ready(
    project: Project,
    *,
    services: tuple[str, ...] | None = None,
    timeout: float = 300,
    poll: float = 0.5,
    look_every: float = 3.0,
    on_ready: Mapping[str, Callable[[], None]] | None = None,
    probe: Callable[[str], probes.Readiness] | None = None,
    later: Collection[str] = (),
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, float]:
    """Poll until every service runs and answers on its health endpoint; fail fast on a dead one.

    Each service is asked every `poll` seconds; the engine's view of the containers (a crashed
    or restarting one fails the wait at once) is read every `look_every` seconds, because each
    read is a `docker compose ps` process: read every round, they cost a quarter of a core while
    the services started and competed with them for the CPU (measured: 10.6 CPU-seconds in a
    41 s cold start). `on_ready[name]` runs once, the moment `name` answers. Services in `later`
    (which a callback may shrink) are not started yet: neither asked nor judged until they leave
    it. Returns the seconds each took.
    """
    services = services or service_names(project.settings)
    ask = probe or (lambda service: probes.readiness(project.settings, service))
    callbacks = dict(on_ready or {})
    started = clock()
    answered: dict[str, float] = {}
    last_report, last_time = "", started
    states: dict[str, ServiceState] = {}
    next_look = started
    while True:
        if clock() >= next_look:
            states = {state.service: state for state in engine.ps(project) if state.service in services}
            broken = [state for state in states.values() if state.broken and state.service not in later]
            if broken:
                raise_unhealthy(project, broken)
            next_look = clock() + look_every
        for name in services:
            if name in answered or name in later:
                continue
            if ask(name) is probes.Readiness.READY:
                answered[name] = clock() - started
                if name in callbacks:
                    callbacks.pop(name)()
        elapsed = clock() - started
        waiting = [name for name in services if name not in answered]
        if not waiting:
            say(f"{', '.join(services)} ready after {elapsed:.1f}s")
            return answered
        if elapsed > timeout:
            late = [states[name] for name in waiting if name in states]
            raise_unhealthy(project, late, f"{', '.join(waiting)} not ready after {timeout:.0f}s")
        report = ", ".join(
            f"{name} ({states[name].health or states[name].state})" if name in states else f"{name} (not created)"
            for name in waiting
        )
        now = clock()
        if report != last_report or now - last_time >= 15:
            say(f"waiting for {report} [{elapsed:.0f}s]")
            last_report, last_time = report, now
        sleep(poll)


def raise_unhealthy(project: Project, states: Iterable[ServiceState], detail: str = "") -> None:
    parts = [detail] if detail else []
    for state in states:
        if state.state == "running" and not state.broken and not detail:
            continue
        condition = state.health if state.state == "running" and state.health else state.state
        if state.state == "exited":
            condition = f"exited with code {state.exit_code}"
        parts.append(
            f"service {state.service} is {condition}; its last log lines:\n"
            + indent(engine.logs_tail(project, state.service))
        )
    parts.append("Fix: read the log lines above; `invoke logs --service NAME` shows more.")
    raise DockerError("\n".join(parts))


def require_running(project: Project) -> None:
    """Fail with one clear message when a service does not run or does not answer."""
    try:
        states = {state.service: state for state in engine.ps(project)}
    except DockerError as error:
        raise TrackstackError(f"stack not running: run `invoke up` ({error})") from None
    down_services = [
        name
        for name in service_names(project.settings)
        if name not in states
        or states[name].state != "running"
        or states[name].broken
        or probes.readiness(project.settings, name) is not probes.Readiness.READY
    ]
    if down_services:
        raise TrackstackError(f"stack not running ({', '.join(down_services)} not ready): run `invoke up`")
