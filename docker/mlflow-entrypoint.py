"""Entrypoint of trackstack's MLflow image: wait until MLflow's services accept connections, then run the command.

`TRACKSTACK_WAIT_FOR` lists `host:port` pairs (space-separated) that must accept a TCP
connection first. Postgres accepts TCP only after its first-run initialisation, so MLflow
starts the moment its database can take it, rather than at the engine's next healthcheck.
After `TRACKSTACK_WAIT_TIMEOUT` seconds (default 120) the command starts anyway and reports
what it cannot reach itself. Standard library only: it runs with `python -I -S`.
"""

from __future__ import annotations

import os
import socket
import sys
import time


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


def main(argv: list[str]) -> None:
    if not argv:
        sys.exit("usage: mlflow-entrypoint COMMAND [ARG ...]")
    wait_for(os.environ.get("TRACKSTACK_WAIT_FOR", "").split(), float(os.environ.get("TRACKSTACK_WAIT_TIMEOUT", "120")))
    os.execvp(argv[0], argv)  # noqa: S606 - becoming the container command is the point


if __name__ == "__main__":
    main(sys.argv[1:])
