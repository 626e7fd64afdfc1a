"""Clients keep logging while MLflow tasks die, nodes leave, and the replicas roll to a new version.

Four clients (one `MlflowClient` each, at its defaults) log runs (a parameter, metric steps, an
artifact, the run's end) through the proxy, retrying as MLflow's client does and no more, while a
fault happens; afterwards everything they were told was stored must read back: every run,
parameter, metric step and artifact byte. A call that failed may or may not have been stored:
the checks ask nothing of it, and the tests print how many failed.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from tests.conftest import ROOT, progress
from tests.swarm.conftest import Deployed
from trackstack.targets.swarm import render as swarm
from trackstack.targets.swarm import state as swarmstate

CLIENTS = 4
STEPS_PER_RUN = 5
ARTIFACT_BYTES = 16 * 1024
# A client starts a run at most every 2 s, as a student's training loop might: with four clients
# calls are always in flight during a fault, and the reading back of every run at the end (what
# these tests spend most on) stays short.
SECONDS_PER_RUN = 2.0
TESTBED = ROOT / "tests" / "swarm" / "testbed.sh"


def node_docker_host(node: str) -> str | None:
    """A node's own engine, when DOCKER_HOST is a socket beside its siblings' (one named per node)."""
    manager = os.environ.get("DOCKER_HOST", "")
    if not manager.startswith("unix://"):
        return None
    sibling = Path(manager.removeprefix("unix://")).with_name(f"{node}.sock")
    return f"unix://{sibling}" if sibling.exists() else None


@dataclass(frozen=True)
class Call:
    """One call of a client: when it began and ended (monotonic), and why it failed ("" when it did not)."""

    what: str
    began: float
    ended: float
    error: str = ""


@dataclass
class Stored:
    """What one client was told was stored, and the calls that failed after MLflow's own retries."""

    steps: dict[str, set[int]] = field(default_factory=dict)  # run id -> metric steps
    params: dict[str, dict[str, str]] = field(default_factory=dict)  # run id -> its parameters
    artifacts: dict[str, str] = field(default_factory=dict)  # run id -> sha256 of its artifact
    finished: set[str] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    last_ack: float = 0.0  # monotonic time of the last call that succeeded
    crashed: str = ""  # the client itself failed (a bug of the test, not of the server)

    def call(self, what: str, action: Callable[[], Any]) -> Any:
        began = time.monotonic()
        try:
            result = action()
        except Exception as error:
            failure = f"{what}: {type(error).__name__}: {error}"[:300]
            self.failures.append(failure)
            self.calls.append(Call(what, began, time.monotonic(), failure))
            return None
        self.last_ack = time.monotonic()
        self.calls.append(Call(what, began, self.last_ack))
        return result if result is not None else True


@dataclass
class Load:
    clients: list[Stored]
    fault_ended: float  # monotonic time when `disturb` returned
    began: float = 0.0  # monotonic time when the clients started

    @property
    def failures(self) -> list[str]:
        return [failure for client in self.clients for failure in client.failures]

    @property
    def metrics(self) -> int:
        return sum(len(steps) for client in self.clients for steps in client.steps.values())

    @property
    def calls(self) -> list[Call]:
        return [call for client in self.clients for call in client.calls]


def client_session(url: str, experiment: str, stored: Stored, done: threading.Event, folder: Path) -> None:
    """One student's client: an `MlflowClient` of its own, at its defaults."""
    from mlflow.tracking import MlflowClient

    try:
        log_runs(MlflowClient(tracking_uri=url), experiment, stored, done, folder)
    except Exception as error:
        stored.crashed = f"{type(error).__name__}: {error}"
        raise


def log_runs(client: Any, experiment: str, stored: Stored, done: threading.Event, folder: Path) -> None:
    """Runs one after another, one every SECONDS_PER_RUN at most."""
    while not done.is_set():
        begun = time.monotonic()
        log_run(client, experiment, stored, done, folder)
        done.wait(SECONDS_PER_RUN - (time.monotonic() - begun))


def log_run(client: Any, experiment: str, stored: Stored, done: threading.Event, folder: Path) -> None:
    """One run: a parameter, STEPS_PER_RUN metric steps, one artifact of random bytes, the run's end."""
    run = stored.call("create_run", lambda: client.create_run(experiment).info.run_id)
    if run is None:
        return
    stored.steps[run] = set()
    seed = uuid.uuid4().hex
    if stored.call(f"{run} param", partial(client.log_param, run, "seed", seed)):
        stored.params[run] = {"seed": seed}
    for step in range(STEPS_PER_RUN):
        if done.is_set():
            return
        if stored.call(f"{run} step {step}", partial(client.log_metric, run, "step", float(step), step=step)):
            stored.steps[run].add(step)
    payload = os.urandom(ARTIFACT_BYTES)
    path = folder / run / "payload.bin"
    path.parent.mkdir(parents=True)
    path.write_bytes(payload)
    if stored.call(f"{run} artifact", partial(client.log_artifact, run, str(path))):
        stored.artifacts[run] = hashlib.sha256(payload).hexdigest()
    if stored.call(f"{run} end", partial(client.set_terminated, run)):
        stored.finished.add(run)


def runs_of(client: Any, experiment: str) -> dict[str, Any]:
    """Every run of the experiment by id, from one search (a request per 1000 runs)."""
    found: dict[str, Any] = {}
    token = None
    while True:
        page = client.search_runs([experiment], max_results=1000, page_token=token)
        found |= {run.info.run_id: run for run in page}
        if not (token := page.token):
            return found


def artifact_reader(deployed: Deployed) -> Callable[[str, str], bytes]:
    """Reads an artifact from MLflow's artifact proxy in one request, as the admin. (The client's
    `download_artifacts` asks for the run and lists the path first: three requests, each paying
    for the server's password check, which is what reading back spent its time on.)"""
    session = requests.Session()
    session.auth = deployed.admin if all(deployed.admin) else None
    retry = Retry(total=5, backoff_factor=1, status_forcelist=(502, 503, 504), allowed_methods=("GET",))
    session.mount(deployed.url, HTTPAdapter(max_retries=retry))

    def read(artifact_uri: str, path: str) -> bytes:
        # mlflow-artifacts:/<experiment>/<run>/artifacts: proxied by the server, which --serve-artifacts does
        assert artifact_uri.startswith("mlflow-artifacts:/"), artifact_uri
        location = artifact_uri.removeprefix("mlflow-artifacts:")
        url = f"{deployed.url}/api/2.0/mlflow-artifacts/artifacts{location}/{path}"
        # verify on the request: a Session's own loses to REQUESTS_CA_BUNDLE from the environment
        response = session.get(url, verify=deployed.ca or True, timeout=60)
        response.raise_for_status()
        return response.content

    return read


def lost(client: Any, stored: Stored, *, runs: dict[str, Any], read: Callable[[str, str], bytes]) -> list[str]:
    """What the server no longer has of what it acknowledged to one client (`runs`: the experiment's)."""
    missing = []
    for run, steps in stored.steps.items():
        found = runs.get(run)
        if found is None:
            missing.append(f"run {run}: not in the experiment any more")
            continue
        history = {metric.step for metric in client.get_metric_history(run, "step")}
        if steps - history:
            missing.append(f"run {run}: steps {sorted(steps - history)}")
        if found.data.params != stored.params.get(run, found.data.params):
            missing.append(f"run {run}: parameters {found.data.params}, not {stored.params[run]}")
        if run in stored.finished and found.info.status != "FINISHED":
            missing.append(f"run {run}: {found.info.status}, its end was acknowledged")
        if run in stored.artifacts:
            payload = read(found.info.artifact_uri, "payload.bin")
            if hashlib.sha256(payload).hexdigest() != stored.artifacts[run]:
                missing.append(f"run {run}: the artifact's bytes differ")
    return missing


@contextmanager
def student_login(deployed: Deployed) -> Iterator[None]:
    """What a student sets for the server (its login, its CA), for the block only: the rest of the
    session (the lifecycle suite's `invoke` runs) sees the environment it had."""
    wanted = {"MLFLOW_TRACKING_USERNAME": deployed.admin[0], "MLFLOW_TRACKING_PASSWORD": deployed.admin[1],
              "MLFLOW_TRACKING_SERVER_CERT_PATH": deployed.ca}  # fmt: skip
    kept = {name: os.environ.get(name) for name in wanted}
    os.environ.update({name: value for name, value in wanted.items() if value})
    try:
        yield
    finally:
        for name, value in kept.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def log_under(deployed: Deployed, disturb: Callable[[], None], *, after: float, warmup: float = 5) -> Load:
    """CLIENTS threads log runs; after `warmup` s `disturb` runs, then they go on for `after` seconds.

    Asserts that every run, parameter, metric step and artifact the clients were told was stored reads back.
    """
    with student_login(deployed):
        return _log_under(deployed, disturb, after=after, warmup=warmup)


def _log_under(deployed: Deployed, disturb: Callable[[], None], *, after: float, warmup: float) -> Load:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=deployed.url)  # the test's own: the experiment, and reading back
    experiment = client.create_experiment(f"load-{uuid.uuid4().hex[:8]}")
    clients = [Stored() for _ in range(CLIENTS)]
    done = threading.Event()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        threads = [
            threading.Thread(target=client_session, args=(deployed.url, experiment, stored, done, folder / str(index)))
            for index, stored in enumerate(clients)
        ]
        loading = time.monotonic()
        for thread in threads:
            thread.start()
        try:
            time.sleep(warmup)
            fault_began = time.monotonic()
            disturb()
            fault_ended = time.monotonic()
            time.sleep(after)
        finally:
            done.set()
            for thread in threads:
                thread.join()
        assert [stored.crashed for stored in clients if stored.crashed] == []
        logged = time.monotonic()
        runs = runs_of(client, experiment)
        check = partial(lost, client, runs=runs, read=artifact_reader(deployed))
        with ThreadPoolExecutor(CLIENTS) as pool:  # read back as the clients wrote: four at once
            found = list(pool.map(check, clients))
        missing = [f"client {i}: {m}" for i, lines in enumerate(found) for m in lines]
    assert missing == [], "lost what the server had acknowledged:\n" + "\n".join(missing[:20])
    load = Load(clients, fault_ended, loading)
    artifacts = sum(len(c.artifacts) for c in clients)
    assert artifacts > 0, "no artifact was stored: the clients never reached that step"
    progress(f"[load] {load.metrics} metric steps and {artifacts} artifacts in {sum(len(c.steps) for c in clients)} "
             f"runs, {len(load.failures)} failed calls; the fault took {fault_ended - fault_began:.0f}s, "
             f"logging {logged - loading:.0f}s, reading back {time.monotonic() - logged:.0f}s")  # fmt: skip
    return load


def mlflow_nodes(deployed: Deployed) -> list[str]:
    name = swarm.service_name(deployed.settings, "mlflow")
    return [t.node for t in swarmstate.tasks(name) if t.desired == "running" and t.state == "running"]


def running_tasks(service: str, node: str) -> set[str]:
    """The ids of the service's tasks that the manager believes run on `node`."""
    out = subprocess.run(["docker", "service", "ps", "--no-trunc", "--filter", f"node={node}", "--filter",
                          "desired-state=running", "--format", "{{.ID}} {{.CurrentState}}", service],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    return {line.split()[0] for line in out.splitlines() if line.split()[1:2] == ["Running"]}


def wait_gone(service: str, node: str, ids: set[str], timeout: float = 120) -> None:
    """Until the manager no longer counts those tasks as running (it has noticed the fault)."""
    deadline = time.monotonic() + timeout
    while running_tasks(service, node) & ids:
        assert time.monotonic() < deadline, f"Swarm still runs {ids} on {node} after {timeout:.0f}s"
        time.sleep(1)


# After the first kill, this many more, each at a random moment of the first seconds after the
# replacement task is ready: a new task is as likely a victim as an old one.
KILLS_AT_RANDOM = 2
SECONDS_AFTER_READY = 8.0


@dataclass(frozen=True)
class Kill:
    task: str
    node: str
    sent: float  # monotonic time just before `docker kill`
    seen: float  # when its engine showed the container stopped: the kill was observed


def container_state(host: str, container: str) -> dict[str, Any]:
    out = subprocess.run(["docker", "-H", host, "inspect", "--format", "{{json .State}}", container],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    state: dict[str, Any] = json.loads(out)
    return state


def kill_a_task(service: str) -> Kill:
    """SIGKILL to one running task's container, chosen at random, on its node's engine; asserts that it ran."""
    out = subprocess.run(["docker", "service", "ps", "--no-trunc", "--filter", "desired-state=running", "--format",
                          "{{.ID}} {{.Node}} {{.CurrentState}}", service],
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    running = [line.split()[:2] for line in out.splitlines() if line.split()[2:3] == ["Running"]]
    assert len(running) >= 2, f"a kill must leave a task to go to; running: {running}"
    task, node = random.choice(running)  # noqa: S311 - which task dies, not a secret
    host = node_docker_host(node)
    assert host, f"no engine socket of {node} beside DOCKER_HOST"
    container = subprocess.run(["docker", "-H", host, "ps", "-q", "--filter", f"label=com.docker.swarm.task.id={task}"],
                               capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert len(container) == 1, f"task {task} has no running container on {node}"
    before = container_state(host, container[0])
    assert before["Running"], before
    assert before["Pid"] > 0, before
    sent = time.monotonic()
    subprocess.run(["docker", "-H", host, "kill", "--signal", "KILL", container[0]], capture_output=True, check=True)
    while (after := container_state(host, container[0]))["Running"]:
        assert time.monotonic() - sent < 30, f"{container[0]} still runs 30 s after SIGKILL"
        time.sleep(0.05)
    assert after["ExitCode"] == 137, after  # it died of the SIGKILL, not of something else
    return Kill(task, node, sent, time.monotonic())


def in_flight(call: Call, kills: list[Kill]) -> bool:
    """Whether the call overlapped a kill: it began before the kill was observed and ended after it was sent."""
    return any(call.began < kill.seen and call.ended > kill.sent for kill in kills)


def test_a_task_killed_at_any_moment_fails_only_calls_in_flight(deployed: Deployed) -> None:
    """A task killed 2 s after an update, then twice at random moments, with four clients at their defaults.

    The proxy opens a new connection per request (no kept connection to a dead task) and sends a
    request whose connection fails to another task; so a call that did not overlap a kill must not
    fail. A call in flight at the kill may fail (MLflow's client does not resend a POST after a 502):
    the test prints how often, for docs/swarm.md.
    """
    name = swarm.service_name(deployed.settings, "mlflow")
    if node_docker_host(mlflow_nodes(deployed)[0]) is None:
        pytest.skip("no socket of the tasks' own engines beside DOCKER_HOST to kill their containers with")
    # A freshly deployed service: every task new (as after `invoke deploy` with a new image).
    subprocess.run(["docker", "service", "update", "--detach", "--force", name], capture_output=True, check=True)
    swarmstate.wait_converged(deployed.project.name, (name,), timeout=420)
    kills: list[Kill] = []

    def kill_then_replace() -> None:
        kills.append(kill_a_task(name))
        wait_gone(name, kills[-1].node, {kills[-1].task})  # the manager has noticed; a replacement comes
        swarmstate.wait_converged(deployed.project.name, (name,), timeout=420)

    def kill_early_then_at_random() -> None:
        kill_then_replace()
        for _ in range(KILLS_AT_RANDOM):
            time.sleep(random.uniform(0, SECONDS_AFTER_READY))  # noqa: S311 - when, not a secret
            kill_then_replace()

    load = log_under(deployed, kill_early_then_at_random, after=5, warmup=2)
    assert len(kills) == 1 + KILLS_AT_RANDOM
    assert kills[0].sent - load.began < 4, "the first kill came later than the first seconds of the load"
    overlapping = [call for call in load.calls if in_flight(call, kills)]
    failed_in_flight = [call for call in overlapping if call.error]
    elsewhere = [call.error for call in load.calls if call.error and not in_flight(call, kills)]
    progress(f"[swarm] {len(kills)} kills; {len(failed_in_flight)} of {len(overlapping)} calls in flight at a kill "
             f"failed ({len(failed_in_flight) / max(len(overlapping), 1):.0%}), {len(load.calls)} calls in all: "
             f"{[call.error for call in failed_in_flight][:4]}")  # fmt: skip
    assert load.metrics > 0
    assert elsewhere == [], "calls that did not overlap a kill failed, which the proxy could have sent elsewhere"


def test_a_drained_and_a_stopped_worker_lose_nothing(deployed: Deployed) -> None:
    """(b) a worker running MLflow is drained, then active again; (c) a worker's daemon stops, then starts."""
    name = swarm.service_name(deployed.settings, "mlflow")
    data_node = swarmstate.data_node().hostname
    if node_docker_host(data_node) is None or not TESTBED.exists():
        pytest.skip("stopping a node's daemon needs the swarm test bed (tests/swarm/testbed.sh) in DOCKER_HOST")

    def busy_worker() -> str:
        workers = [node for node in mlflow_nodes(deployed) if node != data_node]
        return workers[0] if workers else next(n for n in ("ts-node2", "ts-node3") if n != data_node)

    def bed(*args: str) -> None:
        subprocess.run(["bash", str(TESTBED), *args], capture_output=True, check=True, timeout=120)

    def converged() -> None:
        swarmstate.wait_converged(deployed.project.name, (name,), timeout=420)

    faults: list[str] = []

    def drain_then_stop() -> None:
        drained = busy_worker()
        faults.append(f"drained {drained}")
        moved = running_tasks(name, drained)
        subprocess.run(
            ["docker", "node", "update", "--availability", "drain", drained], capture_output=True, check=True
        )
        try:
            wait_gone(name, drained, moved)
            converged()  # its task runs on another node
        finally:
            subprocess.run(["docker", "node", "update", "--availability", "active", drained],
                           capture_output=True, check=True)  # fmt: skip
        stopped = busy_worker()
        faults.append(f"stopped {stopped}")
        lost_tasks = running_tasks(name, stopped)
        bed("node-stop", stopped)
        try:
            wait_gone(name, stopped, lost_tasks)  # the manager has noticed that the node is down
        finally:
            bed("node-start", stopped)
        converged()

    started = time.monotonic()
    load = log_under(deployed, drain_then_stop, after=5)
    progress(f"[swarm] {', '.join(faults)}; faults took {load.fault_ended - started - 5:.0f}s")
    assert load.metrics > 0
    # Logging went on after the faults: no client was left hanging on a dead task.
    assert all(client.last_ack > load.fault_ended for client in load.clients), load.failures[:5]


def test_a_rolling_update_under_load_fails_no_client_call(deployed: Deployed) -> None:
    name = swarm.service_name(deployed.settings, "mlflow")

    def roll() -> None:
        # What a new image or setting does to the replicas: one by one, the new task first.
        subprocess.run(["docker", "service", "update", "--detach", "--force", name], capture_output=True, check=True)
        swarmstate.wait_converged(deployed.project.name, (name,), timeout=420)

    load = log_under(deployed, roll, after=5)
    assert load.metrics > 0
    assert load.failures == []
