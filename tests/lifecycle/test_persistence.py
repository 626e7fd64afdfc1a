"""Runs, metrics, artifacts and pgAdmin's state survive restarts, kills and a daemon restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import engine_lock
from tests.lifecycle.helpers import SERVICES, Invoke, Logged, assert_intact, containers, log_runs, wait_all_healthy
from tests.live.pgadmin_api import PgAdmin
from trackstack.project import Project


@pytest.fixture(scope="module")
def logged(project: Project, tmp_path_factory: pytest.TempPathFactory) -> Logged:
    return log_runs(project, tmp_path_factory.mktemp("persist"))


@pytest.fixture(scope="module")
def pgadmin_group(project: Project) -> Iterator[str]:
    """A server group saved in pgAdmin's own database: its saved state."""
    name = f"persist-{int(time.time())}"
    client = _pgadmin(project)
    response = client.post("/browser/server_group/obj/", {"name": name})
    assert response.status_code == 200, response.text[:300]
    yield name
    client = _pgadmin(project)
    for group in client.get("/browser/server_group/nodes/")["data"]:
        if group["label"] == name:
            client.session.delete(
                f"{client.base_url}/browser/server_group/obj/{group['_id']}",
                headers={"X-pgA-CSRFToken": client.csrf},
                timeout=15,
            )


def _pgadmin(project: Project) -> PgAdmin:
    client = PgAdmin(project.settings.url("PGADMIN_PORT"))
    settings = project.settings
    assert client.login(settings.pgadmin_default_email, settings.pgadmin_default_password.get_secret_value())
    return client


def _assert_everything_kept(project: Project, logged: Logged, group: str, tmp: Path) -> None:
    assert_intact(project, logged, tmp)
    groups = [g["label"] for g in _pgadmin(project).get("/browser/server_group/nodes/")["data"]]
    assert group in groups


def test_stop_then_up(project: Project, invoke: Invoke, logged: Logged, pgadmin_group: str, tmp_path: Path) -> None:
    stopped = invoke("stop")
    assert {c["health"] for c in containers(project).values()} <= {"", "unhealthy", "starting"}
    if project.settings.restart_policy == "always":  # Docker starts such a container with the daemon
        assert "starts it again when the Docker daemon restarts" in stopped.stdout + stopped.stderr
    invoke("up")
    _assert_everything_kept(project, logged, pgadmin_group, tmp_path)


def test_down_then_up(project: Project, invoke: Invoke, logged: Logged, pgadmin_group: str, tmp_path: Path) -> None:
    invoke("down")
    invoke("up")
    _assert_everything_kept(project, logged, pgadmin_group, tmp_path)


# Every service at once rather than one at a time: the same promise for each (nothing lost),
# a harsher case (nothing to lean on while the others recover) and a quarter of the waiting.


def test_docker_restart_of_every_service(project: Project, logged: Logged, pgadmin_group: str, tmp_path: Path) -> None:
    ids = [c["id"] for c in containers(project).values()]
    subprocess.run(["docker", "restart", *ids], check=True, capture_output=True)
    wait_all_healthy(project)
    _assert_everything_kept(project, logged, pgadmin_group, tmp_path)


def test_a_crash_of_every_service_is_undone_by_the_restart_policy(
    project: Project, logged: Logged, pgadmin_group: str, tmp_path: Path
) -> None:
    """SIGKILL to each container's main process: crashes, which the restart policy answers."""
    if project.settings.restart_policy == "no":
        pytest.skip("RESTART_POLICY=no: nothing brings a crashed container back, by request")
    before = containers(project)
    assert set(before) == SERVICES
    for container in before.values():
        pid = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.Pid}}", container["id"]],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        if sys.platform == "win32":  # the live suites run against a Linux engine
            pytest.skip("kills a container's process by its pid on the engine's host")
        os.kill(int(pid), signal.SIGKILL)
    # The engine notices a crash asynchronously: until then the container still looks healthy.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(
        now["started"] == before[name]["started"] for name, now in containers(project).items()
    ):
        time.sleep(0.2)
    wait_all_healthy(project)
    after = containers(project)
    for name in SERVICES:
        assert after[name]["id"] == before[name]["id"], name  # the same container, restarted by the engine
        assert after[name]["started"] != before[name]["started"], name
    _assert_everything_kept(project, logged, pgadmin_group, tmp_path)


def test_docker_kill_of_every_service_then_up(
    project: Project, invoke: Invoke, logged: Logged, pgadmin_group: str, tmp_path: Path
) -> None:
    """`docker kill` counts as a manual stop (the engine does not restart it); `invoke up` does."""
    ids = [c["id"] for c in containers(project).values()]
    subprocess.run(["docker", "kill", *ids], check=True, capture_output=True)
    invoke("up")
    _assert_everything_kept(project, logged, pgadmin_group, tmp_path)


def _dockerd_pid() -> int:
    """The engine behind the default socket (other engines, e.g. a swarm test bed's, may run too)."""
    pidfile = Path("/var/run/docker.pid")
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        pytest.fail(f"TRACKSTACK_TEST_DAEMON_RESTART=1, but {pidfile} names no engine to restart")
    assert Path(f"/proc/{pid}/comm").read_text().strip() == "dockerd", f"{pidfile} names pid {pid}, not dockerd"
    return pid


@pytest.mark.skipif(
    os.environ.get("TRACKSTACK_TEST_DAEMON_RESTART") != "1",
    reason="restarts the Docker daemon: set TRACKSTACK_TEST_DAEMON_RESTART=1 (CI does)",
)
def test_docker_daemon_restart(project: Project, logged: Logged, pgadmin_group: str, tmp_path: Path) -> None:
    with engine_lock(exclusive=True):  # test beds running beside this suite wait
        pid = _dockerd_pid()
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[:-1]
        os.kill(pid, signal.SIGTERM)
        for _ in range(120):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.5)
        with open("/var/log/dockerd.log", "ab") as log:
            subprocess.Popen([c.decode() for c in command], stdout=log, stderr=log, start_new_session=True)
        for _ in range(120):
            if subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0:
                break
            time.sleep(0.5)
    wait_all_healthy(project)
    _assert_everything_kept(project, logged, pgadmin_group, tmp_path)
