"""The MLflow image's entrypoint, run for real: it waits for a port, then becomes the command."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.conftest import ROOT

ENTRYPOINT = ROOT / "docker" / "mlflow-entrypoint.py"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _run(code: str, port: int, timeout: float) -> subprocess.CompletedProcess[str]:
    """The entrypoint, waiting for `port`, then running `python -c code`."""
    return subprocess.run(
        [sys.executable, "-I", "-S", str(ENTRYPOINT), sys.executable, "-c", code],
        env={"TRACKSTACK_WAIT_FOR": f"127.0.0.1:{port}", "TRACKSTACK_WAIT_TIMEOUT": str(timeout)},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_it_waits_until_the_port_accepts_then_runs_the_command() -> None:
    port = _free_port()
    opened: list[float] = []

    def listen_later() -> None:
        time.sleep(1.0)
        server = socket.create_server(("127.0.0.1", port))
        opened.append(time.monotonic())
        server.accept()[0].close()
        server.close()

    thread = threading.Thread(target=listen_later)
    thread.start()
    result = _run("import time; print(time.monotonic())", port, timeout=20)
    thread.join()
    assert result.returncode == 0, result.stderr
    assert float(result.stdout) >= opened[0]  # the command ran only after the port opened
    assert f"waiting for 127.0.0.1:{port}" in result.stderr


def test_it_gives_up_waiting_after_the_timeout_and_runs_the_command_anyway() -> None:
    result = _run("print('ran')", _free_port(), timeout=0.5)
    assert (result.returncode, result.stdout.strip()) == (0, "ran")


def test_file_variables_become_their_values_and_the_file_variables_go(tmp_path: Path) -> None:
    secret = tmp_path / "postgres_password"
    secret.write_text("s3cret with spaces \n", encoding="utf-8")
    shown = "import os; print(repr(os.environ.get('PGPASSWORD')), 'PGPASSWORD_FILE' in os.environ)"
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(ENTRYPOINT), sys.executable, "-c", shown],
        env={"PGPASSWORD_FILE": str(secret)},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert result.stdout.strip() == "'s3cret with spaces ' False"


def test_a_variable_set_both_ways_or_an_unreadable_file_stops_it(tmp_path: Path) -> None:
    both = {"PGPASSWORD": "x", "PGPASSWORD_FILE": str(tmp_path / "none")}
    missing = {"PGPASSWORD_FILE": str(tmp_path / "none")}
    for env, said in ((both, "both PGPASSWORD and PGPASSWORD_FILE"), (missing, "cannot be read")):
        result = subprocess.run(
            [sys.executable, "-I", "-S", str(ENTRYPOINT), "true"], env=env, capture_output=True, text=True, timeout=30
        )
        assert result.returncode == 1
        assert said in result.stderr


def test_periodic_jobs_run_in_the_first_swarm_slot_only() -> None:
    shown = "import os; print(os.environ.get('MLFLOW_SERVER_JOB_ENABLE_PERIODIC_TASKS', 'unset'))"
    cases: tuple[tuple[dict[str, str], str], ...] = (
        ({}, "unset"),  # Compose: no slot, MLflow's default
        ({"TRACKSTACK_TASK_SLOT": "1"}, "unset"),
        ({"TRACKSTACK_TASK_SLOT": "2"}, "false"),
        ({"TRACKSTACK_TASK_SLOT": "3", "MLFLOW_SERVER_JOB_ENABLE_PERIODIC_TASKS": "true"}, "true"),  # .env wins
    )
    for env, expected in cases:
        result = subprocess.run(
            [sys.executable, "-I", "-S", str(ENTRYPOINT), sys.executable, "-c", shown],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert result.stdout.strip() == expected, env


def test_the_metrics_folder_starts_empty_though_a_restart_left_files_in_it(tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_41.db").write_bytes(b"a dead worker's counters")
    shown = "import os, sys; print(sorted(os.listdir(sys.argv[1])))"
    result = subprocess.run(
        [sys.executable, "-I", "-S", str(ENTRYPOINT), sys.executable, "-c", shown, str(folder)],
        env={"PROMETHEUS_MULTIPROC_DIR": str(folder)},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert result.stdout.strip() == "[]"
