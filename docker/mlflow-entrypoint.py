"""Entrypoint of trackstack's MLflow image: read secrets from files, wait for MLflow's services, run the command.

Every `NAME_FILE` variable becomes `NAME` with that file's content (the convention of the
postgres, MinIO and pgAdmin images, for Docker secrets): MLflow itself reads no files.
`TRACKSTACK_WAIT_FOR` lists `host:port` pairs (space-separated) that must accept a TCP
connection first. Postgres accepts TCP only after its first-run initialisation, so MLflow
starts the moment its database can take it, rather than at the engine's next healthcheck.
After `TRACKSTACK_WAIT_TIMEOUT` seconds (default 120) the command starts anyway and reports
what it cannot reach itself. On Docker Swarm, `TRACKSTACK_TASK_SLOT` is the task's slot: MLflow's
periodic jobs run in slot 1 only (MLflow asks that of deployments with several replicas), unless
`MLFLOW_SERVER_JOB_ENABLE_PERIODIC_TASKS` is set. `PROMETHEUS_MULTIPROC_DIR` (MLflow's
`--expose-prometheus` folder) is emptied first: MLflow wants it empty at start, and a container
restarted by its policy keeps the files of its dead workers. Standard library only: it runs with `python -I -S`.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from collections.abc import MutableMapping


def wait_for(targets: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for target in targets:
        host, _, port = target.rpartition(":")
        announced = False
        while time.monotonic() < deadline:
            try:
                socket.create_connection((host, int(port)), timeout=2).close()
                break
            except OSError:  # not listening yet, or its name not in DNS yet
                if not announced:
                    print(f"trackstack: waiting for {target}", file=sys.stderr, flush=True)
                    announced = True
                time.sleep(0.25)


def secrets_from_files(environ: MutableMapping[str, str]) -> None:
    """Replace each `NAME_FILE` variable by `NAME`, holding the file's content (one final newline dropped)."""
    for variable in sorted(name for name in environ if name.endswith("_FILE") and len(name) > len("_FILE")):
        name = variable.removesuffix("_FILE")
        if environ.get(name):
            sys.exit(f"trackstack: both {name} and {variable} are set; set one")
        path = environ.pop(variable)
        try:
            with open(path, encoding="utf-8") as stream:
                value = stream.read()
        except OSError as error:
            sys.exit(f"trackstack: {variable} names {path}, which cannot be read ({error.strerror})")
        environ[name] = value.removesuffix("\n")


def periodic_tasks_on_one_slot(environ: MutableMapping[str, str]) -> None:
    """Turn MLflow's periodic jobs off in every task but slot 1 (an explicit setting wins)."""
    slot = environ.get("TRACKSTACK_TASK_SLOT", "")
    if slot and slot != "1":
        environ.setdefault("MLFLOW_SERVER_JOB_ENABLE_PERIODIC_TASKS", "false")


def fresh_metrics_dir(environ: MutableMapping[str, str]) -> None:
    """Create PROMETHEUS_MULTIPROC_DIR empty: the metrics files of a previous start are dropped."""
    folder = environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if not folder:
        return
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, mode=0o700, exist_ok=True)


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: mlflow-entrypoint COMMAND [ARG ...]")
    secrets_from_files(os.environ)
    periodic_tasks_on_one_slot(os.environ)
    fresh_metrics_dir(os.environ)
    wait_for(os.environ.get("TRACKSTACK_WAIT_FOR", "").split(), float(os.environ.get("TRACKSTACK_WAIT_TIMEOUT", "120")))
    os.execvp(argv[0], argv)  # noqa: S606 - becoming the container command is the point


if __name__ == "__main__":
    main(sys.argv[1:])
