"""The disaster drill (issue 26): the data node's disk dies; the class comes back from the off-node backup.

A class works on a stack whose data node is a worker, ts-node2; the stack backs itself up every
minute to the test bed's S3 server, off every node (tests/swarm/testbed.sh starts it). Once a
verified backup newer than the class's work exists, ts-node2's engine stops and its Docker
volumes are deleted (`testbed.sh node-wipe`: its disk died; the node stays down). The instructor
labels the manager ts-node1 as the data node (on this bed the only node that can be it: a restore
on Swarm needs the engine in use to be a manager and to run Postgres), deploys an empty stack and
restores the newest verified backup. Every run, parameter, metric step, artifact byte, login and
permission of the backup must be back. The test prints the recovery point (the backup's age at
the disaster) and the time to recover.

The drill has its project (tsdrill) and `.env` of its own, beside the suite's; it undeploys the
suite's stack first (its volumes stay on ts-node1) and runs last (tests/swarm/conftest.py). It
leaves the bed as `testbed.sh up` made it: ts-node2 running, the data label on ts-node1 only,
nothing of tsdrill left (stack, volumes, secrets, its backups in the bucket).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
import requests
from dotenv import dotenv_values

from tests.conftest import ROOT, bed_unavailable, progress
from tests.swarm.conftest import PROJECT, invoke, write_env
from tests.swarm.test_resilience import TESTBED, node_docker_host
from trackstack.backup_dest import created
from trackstack.targets.swarm import render as swarm
from trackstack.targets.swarm import state as swarmstate
from trackstack.validation import RELAXED, load_settings

DRILL = "tsdrill"
VICTIM = "ts-node2"  # the data node whose disk dies: a worker, so that the swarm's manager lives on
RESCUER = "ts-node1"  # the new data node: the manager, where `invoke restore` reaches Postgres and scales MLflow
RUNS = 3
STEPS = 200
ARTIFACT_BYTES = 256 * 1024
BACKUP_WAIT = 240  # seconds: a run every minute, its write and read-back, and a busy 2-core machine
VERIFIED = re.compile(r"(?<!not )verified\s+\((\d{8}T\d{6}Z)\)")


def docker(*args: str, host: str | None = None) -> subprocess.CompletedProcess[str]:
    command = ["docker", *(["-H", host] if host else []), *args]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=120)


def bed(*args: str) -> None:
    result = subprocess.run(["bash", str(TESTBED), *args], capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, f"testbed.sh {' '.join(args)}:\n{result.stdout}\n{result.stderr}"


def put_data_label_on(node: str) -> None:
    """The data label on `node` only (the manager changes node specs, also of a node that is down)."""
    for found in swarmstate.nodes():
        if found.hostname != node and swarm.DATA_LABEL in found.labels:
            docker("node", "update", "--label-rm", swarm.DATA_LABEL, found.hostname)
    docker("node", "update", "--label-add", f"{swarm.DATA_LABEL}=true", node)


def clear_drill() -> None:
    """Nothing of the drill's project on the swarm: its stack, its volumes on every node, its secrets."""
    if swarmstate.services(DRILL):
        docker("stack", "rm", DRILL)
    swarmstate.wait_removed(DRILL, timeout=180)
    for node in ("ts-node1", "ts-node2", "ts-node3"):
        host = node_docker_host(node)
        deadline = time.monotonic() + 60
        while host:  # a removed task's container may hold its volume for a few seconds
            # By name: a volume the node recreated for an old task after node-wipe has lost its labels.
            names = docker("volume", "ls", "-q", "--filter", f"name={DRILL}_", host=host).stdout.split()
            left = [name for name in names if name.startswith(f"{DRILL}_")]
            if not left:
                break
            removed = subprocess.run(["docker", "-H", host, "volume", "rm", *left], capture_output=True, text=True,
                                     check=False)  # fmt: skip
            if removed.returncode != 0 and time.monotonic() > deadline:
                raise AssertionError(f"volumes of {DRILL} on {node} not removed: {removed.stderr}")
            time.sleep(0 if removed.returncode == 0 else 2)
    owned = docker("secret", "ls", "-q", "--filter", f"label={swarm.PROJECT_LABEL}={DRILL}").stdout.split()
    if owned:
        docker("secret", "rm", *owned)


@dataclass
class Drill:
    env_file: Path
    values: dict[str, str] = field(repr=False)
    addresses: dict[str, str]  # node name -> address

    def write(self, **overrides: str) -> None:
        self.values |= overrides
        write_env(self.env_file, self.values)

    def url(self, node: str) -> str:
        return f"https://{self.addresses[node]}:{self.values['MLFLOW_PORT']}"


@pytest.fixture
def disaster_bed(swarm_env: dict[str, str], env_file: Path) -> Iterator[Drill]:
    """The drill's `.env` and a bed ready for it; afterwards the bed as `testbed.sh up` leaves it."""
    endpoint = os.environ.get("TRACKSTACK_TEST_S3_ENDPOINT", "")
    credentials = Path(os.environ.get("TRACKSTACK_TEST_S3_CREDENTIALS", "") or "/nonexistent")
    if not endpoint or not TESTBED.exists() or f"{VICTIM}=" not in os.environ.get("TRACKSTACK_SWARM_NODES", ""):
        bed_unavailable("TRACKSTACK_TEST_SWARM", "the disaster drill needs the swarm test bed with its S3 server "
                        '(tests/swarm/testbed.sh up; eval "$(tests/swarm/testbed.sh env)")')  # fmt: skip
    if sys.platform == "win32" or os.geteuid() != 0 or not credentials.is_file():
        bed_unavailable("TRACKSTACK_TEST_SWARM", f"stopping a node and reading {credentials} need root")
    keys = dotenv_values(credentials)
    addresses = {node.hostname: node.address for node in swarmstate.nodes()}
    if swarmstate.services(PROJECT):  # the suite's stack: its data label moves, so it must not run
        undeployed = invoke("undeploy", env_file=env_file, timeout=300)
        assert undeployed.returncode == 0, undeployed.stdout + undeployed.stderr
    drill = Drill(
        env_file=env_file.with_name(f"{env_file.name}.drill"),
        values=swarm_env
        | {
            "COMPOSE_PROJECT_NAME": DRILL,
            "MLFLOW_PUBLIC_HOSTS": f"{addresses[VICTIM]},{addresses[RESCUER]}",
            "MLFLOW_REPLICAS": "1",  # the drill's time goes to the recovery, not to rolling replicas
            "BACKUP_SCHEDULE": "* * * * *",
            "BACKUP_KEEP": "3",
            "BACKUP_DEST": f"s3://{os.environ.get('TRACKSTACK_TEST_S3_BUCKET', 'trackstack-backups')}/"
            f"drill-{uuid.uuid4().hex[:8]}",
            "BACKUP_S3_ENDPOINT": endpoint,
            "BACKUP_S3_ACCESS_KEY": keys.get("ACCESS_KEY") or "",
            "BACKUP_S3_SECRET_KEY": keys.get("SECRET_KEY") or "",
        },
        addresses=addresses,
    )
    bed("node-start", VICTIM)  # an interrupted drill may have left it down; nothing when it runs
    clear_drill()  # and the rest of what it may have left
    put_data_label_on(VICTIM)
    try:
        yield drill
    finally:
        failed = []
        for step in (partial(bed, "node-start", VICTIM), partial(put_data_label_on, RESCUER), clear_drill,
                     partial(forget_backups, drill.env_file)):  # fmt: skip
            try:  # every step, whatever failed before
                step()
            except Exception as error:
                failed.append(f"{error}")
        assert not failed, f"the bed was not put back: {failed}"


def forget_backups(env_file: Path) -> None:
    """The drill's backups out of the bed's bucket, and its `.env` (its volumes are gone)."""
    from trackstack import scheduled_backups

    if not env_file.exists():
        return
    found = scheduled_backups.destination(load_settings(env_file, RELAXED))
    for entry in found.entries():
        found.delete(entry.name)
    env_file.unlink()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class ClassWork:
    """What the class stored, as the clients were told."""

    experiment: str
    params: dict[str, dict[str, str]] = field(default_factory=dict)  # run id -> parameters
    steps: dict[str, list[tuple[int, float]]] = field(default_factory=dict)  # run id -> (step, value)
    artifacts: dict[str, str] = field(default_factory=dict)  # run id -> sha256 of data.bin
    student: tuple[str, str] = field(default=("", ""), repr=False)
    student_run: str = ""


def log_class(url: str, admin: tuple[str, str], ca: str, folder: Path, env_file: Path) -> ClassWork:
    """Runs of the instructor (parameters, metric steps, an artifact each) and a student's login, with EDIT
    on the class's experiment granted through MLflow's API, and a run of the student's own."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = admin
    os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"] = ca
    client = MlflowClient(tracking_uri=url)
    work = ClassWork(client.create_experiment(f"drill-{uuid.uuid4().hex[:8]}"))
    for number in range(RUNS):
        run = client.create_run(work.experiment).info.run_id
        params = {"lr": str(0.1 / (number + 1)), "seed": secrets.token_hex(4)}
        steps = [(step, round(1 / (step + 1 + number), 6)) for step in range(STEPS)]
        now = int(time.time() * 1000)
        client.log_batch(run, metrics=[Metric("loss", value, now, step) for step, value in steps],
                         params=[Param(key, value) for key, value in params.items()])  # fmt: skip
        artifact = folder / f"run{number}" / "data.bin"
        artifact.parent.mkdir()
        artifact.write_bytes(os.urandom(ARTIFACT_BYTES))
        client.log_artifact(run, str(artifact))
        client.set_terminated(run)
        work.params[run], work.steps[run], work.artifacts[run] = params, steps, sha256(artifact)

    login = f"student-{uuid.uuid4().hex[:6]}"
    added = invoke("user.add", login, env_file=env_file, timeout=300)
    assert added.returncode == 0, added.stdout + added.stderr
    work.student = (login, added.stdout.split("(shown only now): ", 1)[1].split()[0])
    granted = requests.post(f"{url}/api/2.0/mlflow/experiments/permissions/create", auth=admin, verify=ca,
                            json={"experiment_id": work.experiment, "username": login, "permission": "EDIT"},
                            timeout=60)  # fmt: skip
    assert granted.status_code == 200, granted.text
    created_run = requests.post(f"{url}/api/2.0/mlflow/runs/create", auth=work.student, verify=ca, timeout=60,
                                json={"experiment_id": work.experiment})  # fmt: skip
    assert created_run.status_code == 200, created_run.text  # EDIT, not the default READ, allows it
    work.student_run = str(created_run.json()["run"]["info"]["run_id"])
    return work


def wait_for_backup(env_file: Path, after: datetime) -> str:
    """The first verified scheduled backup that began after `after`, as `invoke backups` lists it."""
    deadline = time.monotonic() + BACKUP_WAIT
    listed = ""
    while time.monotonic() < deadline:
        result = invoke("backups", env_file=env_file, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        listed = result.stdout
        newer = [str(name) for name in VERIFIED.findall(listed) if created(name) > after]
        if newer:
            return min(newer)
        time.sleep(10)
    raise AssertionError(f"no verified scheduled backup newer than {after:%H:%M:%S} UTC after {BACKUP_WAIT}s:\n"
                         f"{listed}\n(`docker service logs {DRILL}_backup` says why)")  # fmt: skip


def assert_class_back(url: str, admin: tuple[str, str], ca: str, work: ClassWork, folder: Path) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = admin
    os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"] = ca
    client = MlflowClient(tracking_uri=url)
    found = {run.info.run_id for run in client.search_runs([work.experiment], max_results=100)}
    assert found == {*work.params, work.student_run}
    mlflow.set_tracking_uri(url)
    for run_id, params in work.params.items():
        run = client.get_run(run_id)
        assert run.data.params == params
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run_id, "loss")
        assert sorted((m.step, m.value) for m in history) == work.steps[run_id]
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="data.bin",
                                                   dst_path=str(folder / run_id))  # fmt: skip
        assert sha256(Path(path)) == work.artifacts[run_id]
    # The student's login and permission: EDIT on the class's experiment lets them create a run there.
    login = work.student[0]
    search = f"{url}/api/2.0/mlflow/experiments/search"
    assert requests.get(search, params={"max_results": 1}, auth=work.student, verify=ca, timeout=60).status_code == 200
    permission = requests.get(f"{url}/api/2.0/mlflow/experiments/permissions/get", auth=admin, verify=ca, timeout=60,
                              params={"experiment_id": work.experiment, "username": login})  # fmt: skip
    assert permission.status_code == 200, permission.text
    assert permission.json()["experiment_permission"]["permission"] == "EDIT"
    again = requests.post(f"{url}/api/2.0/mlflow/runs/create", auth=work.student, verify=ca, timeout=60,
                          json={"experiment_id": work.experiment})  # fmt: skip
    assert again.status_code == 200, again.text


def test_a_class_comes_back_after_its_data_node_dies(disaster_bed: Drill, tmp_path: Path) -> None:
    drill = disaster_bed
    drill.write()
    started = time.monotonic()
    deployed = invoke("deploy", env_file=drill.env_file)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert swarmstate.data_node().hostname == VICTIM
    settings = load_settings(drill.env_file, RELAXED)
    admin = (settings.mlflow_admin_user, settings.mlflow_admin_password.get_secret_value())
    ca = str(ROOT / swarm.ca_file(settings))
    progress(f"[swarm] drill: deployed with the data on {VICTIM} in {time.monotonic() - started:.0f}s")

    work = log_class(drill.url(VICTIM), admin, ca, tmp_path, drill.env_file)
    logged = datetime.now(UTC)
    point = wait_for_backup(drill.env_file, after=logged)
    progress(f"[swarm] drill: backup {point} verified {time.monotonic() - started:.0f}s into the drill")

    # The disaster: the data node's engine stops and its disk is gone; the node stays down.
    lost = datetime.now(UTC)
    recovering = time.monotonic()
    bed("node-wipe", VICTIM)
    # The instructor's recovery (docs/backups.md, "After losing a machine"): the dead node's stack
    # removed first (so that nothing starts on the new node's empty volumes before the deploy prepares
    # them), another data node, the stack deployed empty there without scheduled backups (they would
    # back the empty stack up and make that the newest), the newest verified backup restored.
    steps = {}

    def step(*args: str) -> subprocess.CompletedProcess[str]:
        began = time.monotonic()
        result = invoke(*args, env_file=drill.env_file)
        assert result.returncode == 0, f"invoke {' '.join(args)}:\n{result.stdout}\n{result.stderr}"
        steps[args[0]] = time.monotonic() - began
        return result

    step("undeploy")
    put_data_label_on(RESCUER)
    drill.write(MLFLOW_PUBLIC_HOSTS=f"{drill.addresses[RESCUER]},{drill.addresses[VICTIM]}", BACKUP_SCHEDULE="")
    step("deploy")
    result = step("restore", "--yes", "latest")
    recovered = time.monotonic() - recovering
    assert swarmstate.data_node().hostname == RESCUER
    # The newest verified backup at the disaster: the one waited for, or one the next minute verified
    # before the engine stopped (the same work); never one of the stack after it.
    fetched = re.search(r"fetched and verified latest \((\d{8}T\d{6}Z)\)", result.stdout)
    assert fetched, result.stdout
    restored = fetched[1]
    assert point <= restored, (point, restored)
    assert created(restored) < lost, (restored, lost)
    age = (lost - created(restored)).total_seconds()
    progress(f"[swarm] drill: recovery point {restored}, {age:.0f}s old at the disaster (work logged "
             f"{(lost - logged).total_seconds():.0f}s before it); time to recover {recovered:.0f}s "
             f"(undeploy {steps['undeploy']:.0f}s, deploy {steps['deploy']:.0f}s, "
             f"restore {steps['restore']:.0f}s)")  # fmt: skip

    assert_class_back(drill.url(RESCUER), admin, ca, work, tmp_path)
    progress(f"[swarm] drill: every run, step, artifact, login and permission back; {time.monotonic() - started:.0f}s")
