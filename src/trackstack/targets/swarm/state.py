"""What the swarm says: the manager, the data node, services' replicas, tasks, jobs and secrets.

Reading and waiting only; every query is a docker command with JSON output, parsed by the pure
functions here (the unit tests feed them what Docker prints).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from trackstack import engine
from trackstack.console import say
from trackstack.errors import TrackstackError
from trackstack.settings import Settings
from trackstack.targets.swarm.render import DATA_LABEL, PROJECT_LABEL, STACK_LABEL, service_name


class DeployError(TrackstackError):
    """The swarm refused or did not reach what `invoke deploy` asked; the message says why and the fix."""


def _json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _docker_json(*args: str) -> list[dict[str, object]]:
    return _json_lines(engine.run(["docker", *args, "--format", "{{json .}}"], capture=True).stdout)


# -- the manager and the data node -------------------------------------------------------
def manager_problem(swarm_info: dict[str, object]) -> str | None:
    """Why the engine cannot deploy (from `docker info`'s Swarm part); None when it is a manager."""
    if swarm_info.get("LocalNodeState") != "active":
        return (
            "the Docker engine in use is not part of a swarm. Fix: `docker swarm init` on the machine that will "
            'manage it (README: "Shared server on Docker Swarm"), or point DOCKER_HOST or `docker context use` '
            "at a manager of your swarm"
        )
    if not swarm_info.get("ControlAvailable"):
        return (
            "the Docker engine in use is a swarm worker, and only managers deploy. Fix: point DOCKER_HOST or "
            "`docker context use` at a manager (`docker node ls` on one lists them)"
        )
    return None


def require_manager() -> None:
    info = engine.run(["docker", "info", "--format", "{{json .Swarm}}"], capture=True).stdout
    problem = manager_problem(json.loads(info or "{}"))
    if problem:
        raise DeployError(problem)


@dataclass(frozen=True)
class Node:
    hostname: str
    address: str
    labels: dict[str, str]
    ready: bool


def parse_nodes(inspected: Iterable[Mapping[str, object]]) -> list[Node]:
    nodes = []
    for node in inspected:
        spec, status, description = (node.get(key) or {} for key in ("Spec", "Status", "Description"))
        assert isinstance(spec, dict)  # noqa: S101 - Docker's node objects
        assert isinstance(status, dict)  # noqa: S101
        assert isinstance(description, dict)  # noqa: S101
        nodes.append(
            Node(
                hostname=str(description.get("Hostname", "")),
                address=str(status.get("Addr", "")),
                labels=dict(spec.get("Labels") or {}),
                ready=status.get("State") == "ready",
            )
        )
    return nodes


def choose_data_node(nodes: list[Node]) -> Node:
    labelled = [node for node in nodes if node.labels.get(DATA_LABEL) == "true"]
    fix = f"`docker node update --label-add {DATA_LABEL}=true NODE` on the one node that keeps the data"
    if not labelled:
        raise DeployError(f"no node of the swarm is labelled {DATA_LABEL}=true. Fix: {fix}")
    if len(labelled) > 1:
        names = ", ".join(node.hostname for node in labelled)
        raise DeployError(f"{len(labelled)} nodes are labelled {DATA_LABEL}=true ({names}); the data has one home. "
                          f"Fix: `docker node update --label-rm {DATA_LABEL} NODE` on all but one")  # fmt: skip
    return labelled[0]


def nodes() -> list[Node]:
    ids = engine.run(["docker", "node", "ls", "--quiet"], capture=True).stdout.split()
    return parse_nodes(json.loads(engine.run(["docker", "node", "inspect", *ids], capture=True).stdout))


def data_node() -> Node:
    return choose_data_node(nodes())


# -- services and their tasks ------------------------------------------------------------------
@dataclass(frozen=True)
class ServiceState:
    name: str
    running: int
    desired: int
    image: str


def parse_replicas(text: str) -> tuple[int, int]:
    """`docker service ls`'s REPLICAS: "2/3", "1/1 (max 1 per node)", "0/1 (1/1 completed)"."""
    running, _, desired = text.split(" ")[0].partition("/")
    return int(running or 0), int(desired or 0)


def parse_services(rows: Iterable[Mapping[str, object]]) -> dict[str, ServiceState]:
    found = {}
    for row in rows:
        running, desired = parse_replicas(str(row.get("Replicas", "0/0")))
        name = str(row["Name"])
        found[name] = ServiceState(name, running, desired, str(row.get("Image", "")).split("@")[0])
    return found


def services(project: str) -> dict[str, ServiceState]:
    return parse_services(_docker_json("service", "ls", "--filter", f"label={STACK_LABEL}={project}"))


def desired_replicas(service: str) -> int:
    """The replicas a service asks for; 0 when it does not exist."""
    result = engine.run(["docker", "service", "inspect", "--format", "{{json .Spec.Mode}}", service],
                        capture=True, check=False)  # fmt: skip
    if result.returncode != 0:
        return 0
    mode = json.loads(result.stdout)
    return int((mode.get("Replicated") or {}).get("Replicas", 1))


def service_labels(service: str) -> dict[str, str]:
    """A service's own labels (its `deploy.labels`); empty when it does not exist."""
    result = engine.run(["docker", "service", "inspect", "--format", "{{json .Spec.Labels}}", service],
                        capture=True, check=False)  # fmt: skip
    if result.returncode != 0:
        return {}
    return {str(key): str(value) for key, value in (json.loads(result.stdout or "null") or {}).items()}


@dataclass(frozen=True)
class Task:
    service: str
    state: str  # running, starting, complete, failed, rejected, ... (CurrentState's first word, lower case)
    desired: str  # running, shutdown, complete
    error: str
    node: str


def parse_tasks(rows: Iterable[Mapping[str, object]]) -> list[Task]:
    tasks = []
    for row in rows:
        name = str(row.get("Name", "")).lstrip("\\_ ")
        tasks.append(
            Task(
                service=name.rsplit(".", 1)[0],
                state=str(row.get("CurrentState", "")).split(" ")[0].lower(),
                desired=str(row.get("DesiredState", "")).lower(),
                error=str(row.get("Error", "")),
                node=str(row.get("Node", "")),
            )
        )
    return tasks


def tasks(*names: str) -> list[Task]:
    return parse_tasks(_docker_json("service", "ps", "--no-trunc", *names))


def update_states(*names: str) -> dict[str, str]:
    """Each service's rolling-update state: "" (never updated), updating, completed, paused, rollback_*."""
    result = engine.run(["docker", "service", "inspect", "--format", "{{.Spec.Name}} {{json .UpdateStatus}}", *names],
                        capture=True)  # fmt: skip
    states = {}
    for line in result.stdout.splitlines():
        name, _, status = line.partition(" ")
        states[name] = str((json.loads(status or "null") or {}).get("State", ""))
    return states


def converged(service: ServiceState, service_tasks: list[Task], update: str) -> bool:
    """Every wanted task runs (healthy: Swarm says running only after the healthcheck passed), none more."""
    if update in ("updating", "rollback_started"):
        return False
    running = [task for task in service_tasks if task.desired == "running" and task.state == "running"]
    pending = [task for task in service_tasks if task.desired == "running" and task.state != "running"]
    return service.running == service.desired == len(running) and not pending


def wait_converged(
    project: str,
    names: tuple[str, ...],
    *,
    timeout: float,
    poll: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Wait until every service runs all its replicas, healthy, with no update under way."""

    started = clock()
    last = ""
    steady = 0
    while True:
        found = {name: state for name, state in services(project).items() if name in names}
        by_service: dict[str, list[Task]] = {}
        for task in tasks(*found):
            by_service.setdefault(task.service, []).append(task)
        updates = update_states(*found)
        rolled_back = [name for name, state in updates.items() if state in ("rollback_completed", "paused")]
        if rolled_back:
            what = "did not become healthy; Swarm rolled back to the previous version"
            raise DeployError(_report(project, rolled_back, found, by_service, what))
        waiting = [n for n in names if n not in found or not converged(found[n], by_service.get(n, []), updates[n])]
        # Twice in a row: right after `stack deploy` the old tasks may still look converged.
        steady = steady + 1 if not waiting else 0
        if steady >= 2:
            return
        elapsed = clock() - started
        if elapsed > timeout:
            raise DeployError(_report(project, waiting, found, by_service, f"not ready after {timeout:.0f}s"))
        report = ", ".join(f"{n.removeprefix(project + '_')} {_replicas(found.get(n))}" for n in waiting)
        if waiting and report != last:
            say(f"waiting for {report} [{elapsed:.0f}s]")
            last = report
        sleep(poll)


def _replicas(state: ServiceState | None) -> str:
    return f"{state.running}/{state.desired}" if state else "(absent)"


def _report(
    project: str, names: list[str], found: dict[str, ServiceState], by_service: dict[str, list[Task]], what: str
) -> str:
    lines = [f"{', '.join(n.removeprefix(project + '_') for n in names)}: {what}."]
    for name in names:
        errors = sorted({f"{t.state} on {t.node}: {t.error}" for t in by_service.get(name, []) if t.error})
        lines.append(f"  {name} {_replicas(found.get(name))}" + "".join(f"\n    {e}" for e in errors[:5]))
        logs = engine.run(["docker", "service", "logs", "--raw", "--tail", "15", name], capture=True, check=False)
        lines += [f"    | {line}" for line in (logs.stdout + logs.stderr).strip().splitlines()[-15:]]
    lines.append("Fix: read the errors and log lines above; `docker service ps --no-trunc NAME` shows every task.")
    return "\n".join(lines)


def wait_job(name: str, *, timeout: float = 600, poll: float = 1.0) -> tuple[str, str]:
    """Wait for a one-shot job's task to end: ("complete" | "failed" | ..., its output)."""
    deadline = time.monotonic() + timeout
    state = "did not finish"
    while time.monotonic() < deadline:
        ended = [task for task in tasks(name) if task.state in ("complete", "failed", "rejected", "shutdown")]
        if ended:
            state = ended[0].state + (f" ({ended[0].error})" if ended[0].error else "")
            break
        time.sleep(poll)
    logs = engine.run(["docker", "service", "logs", "--raw", name], capture=True, check=False)
    return ("complete" if state == "complete" else state), (logs.stdout + logs.stderr).strip()


def project_secrets(project: str) -> set[str]:
    result = engine.run(["docker", "secret", "ls", "--filter", f"label={PROJECT_LABEL}={project}",
                         "--format", "{{.Name}}"], capture=True)  # fmt: skip
    return set(result.stdout.split())


def wait_removed(project: str, *, timeout: float) -> None:
    """`docker stack rm` returns at once; the network goes when the last task has stopped."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = engine.run(["docker", "network", "ls", "--quiet", "--filter", f"label={STACK_LABEL}={project}"],
                          capture=True).stdout.strip()  # fmt: skip
        if not left and not services(project):
            return
        time.sleep(1)
    raise DeployError(f"the stack {project} was not gone after {timeout:.0f}s. Fix: `docker stack ps {project}`.")


# -- containers of the engine in use ---------------------------------------------------
def task_container(settings: Settings, service: str) -> str:
    """The running container of `service`'s task on the engine in use; the data node's engine has it."""
    name = service_name(settings, service)
    found = engine.run(["docker", "ps", "--quiet", "--filter", f"label=com.docker.swarm.service.name={name}",
                        "--filter", "status=running"], capture=True).stdout.split()  # fmt: skip
    if not found:
        raise DeployError(
            f"no task of {name} runs on the Docker engine in use: trackstack reaches Postgres and the artifact "
            f"store inside their containers, on the node labelled {DATA_LABEL}=true. Fix: run the task on that "
            "node, or point DOCKER_HOST at its engine (e.g. ssh://admin@NODE); `invoke status` shows whether the "
            "stack runs."
        )
    return found[0]
