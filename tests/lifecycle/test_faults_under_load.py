"""Postgres crashes and the artifact store restarts while four clients log: nothing acknowledged is lost.

The load and its checks are the swarm suite's (`log_under`): four threads, each an `MlflowClient`
at its defaults (no retry of the test's own, no MLFLOW_* setting but the login), log runs with a
parameter, metric steps, an artifact and the run's end. Afterwards every run, parameter, metric
step and artifact byte a client was told was stored (the call returned) must read back.

A call that failed (an exception after the client's own retries) is counted and printed, not
hidden; what the server did with it is not asserted: a write the client was told failed may or
may not be stored (a run created just before its answer was lost is there, unreported). What is
asserted about failed calls: every one began while the fault lasted (no call begun more than
RECOVERY seconds after every service was healthy again failed), and every client was told of a
stored write after the fault: logging went on by itself.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from tests.conftest import progress
from tests.lifecycle.helpers import containers, wait_all_healthy
from tests.swarm.conftest import Deployed
from tests.swarm.test_resilience import Load, log_under
from trackstack.project import Project
from trackstack.services import MINIO, POSTGRES

# Seconds after every service is healthy again within which a call may still fail (MLflow's
# pools notice a dead connection on their next checkout; a probe interval of lag).
RECOVERY = 10.0


def server(project: Project) -> Deployed:
    """The Compose stack's MLflow as a student reaches it: its URL and, with logins on, the admin's login."""
    settings = project.settings
    login = (settings.mlflow_admin_user, settings.mlflow_admin_password.get_secret_value())
    return Deployed(project, settings.mlflow_url, login if settings.mlflow_auth else ("", ""), ca="")


def engine_state(container: str) -> dict[str, str]:
    out = subprocess.run(["docker", "inspect", "--format", "{{.State.Running}} {{.State.Pid}} {{.State.StartedAt}}",
                          container], capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    return {"running": out[0], "pid": out[1], "started": out[2]}


def hit_running(project: Project, service: str, fault: Callable[[str, dict[str, str]], None]) -> Callable[[], None]:
    """`fault` on the service's container, asserted to have hit it running (healthy), and to have
    made it start again (a new StartedAt and main process); returns once every service is healthy."""

    def disturb() -> None:
        container = containers(project)[service]
        before = engine_state(container["id"])
        assert before["running"] == "true", f"{service} was not running: {before}"
        assert container["health"] == "healthy", f"{service} was {container['health']}, not healthy"
        fault(container["id"], before)
        deadline = time.monotonic() + 120
        while (after := engine_state(container["id"]))["started"] == before["started"] or after["running"] != "true":
            assert time.monotonic() < deadline, f"{service} did not start again within 120 s: {after}"
            time.sleep(0.2)
        assert after["pid"] != before["pid"], (before, after)
        wait_all_healthy(project)
        progress(f"[faults] {service}: pid {before['pid']} -> {after['pid']}, started again at {after['started']}")

    return disturb


def sigkill(container: str, state: dict[str, str]) -> None:
    """SIGKILL to the container's main process on the engine's host: a crash, which the restart policy
    answers. (`docker kill` would count as a stop by hand, which the engine does not undo.)"""
    if sys.platform == "win32":  # the live suites run against a Linux engine
        pytest.skip("kills a container's process by its pid on the engine's host")
    os.kill(int(state["pid"]), signal.SIGKILL)


def docker_restart(container: str, state: dict[str, str]) -> None:
    subprocess.run(["docker", "restart", container], capture_output=True, check=True)


def check_recovered(name: str, load: Load) -> None:
    late = [c.error for c in load.calls if c.error and c.began > load.fault_ended + RECOVERY]
    progress(f"[faults] {name}: {len(load.failures)} of {len(load.calls)} calls failed while it lasted: "
             f"{load.failures[:3]}")  # fmt: skip
    assert load.metrics > 0
    assert late == [], f"calls begun over {RECOVERY:.0f} s after the stack was healthy again failed"
    assert all(client.last_ack > load.fault_ended for client in load.clients), "a client did not log again"


@pytest.fixture(autouse=True)
def _restart_policy(project: Project) -> None:
    if project.settings.restart_policy == "no":
        pytest.skip("RESTART_POLICY=no: nothing brings a crashed container back, by request")


def test_postgres_killed_under_load_loses_no_acknowledged_write(project: Project) -> None:
    load = log_under(server(project), hit_running(project, POSTGRES.name, sigkill), after=15)
    check_recovered("Postgres SIGKILL", load)


def test_the_artifact_store_restarted_under_load_loses_no_acknowledged_write(project: Project) -> None:
    load = log_under(server(project), hit_running(project, MINIO.name, docker_restart), after=15)
    check_recovered(f"{project.settings.artifact_store} restart", load)
