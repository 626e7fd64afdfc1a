"""The scheduled `mlflow gc`, as the orchestrator runs it: `python -m trackstack.gc_runner loop|once|health -- CMD`.

It runs in the MLflow image (copied in beside `schedule`: templates/Dockerfile.mlflow.j2), whose
entrypoint has turned the `*_FILE` secrets into variables. `CMD` is `mlflow gc ...` as
`trackstack.mlflow_gc` builds it: `loop` runs it each time MLFLOW_GC_SCHEDULE (UTC) fires, logs its
output, and keeps a heartbeat that `health` (the service's healthcheck) reads; a failed run is
logged, and the next comes. `once` runs it now (`invoke gc` on Compose, in MLflow's own container).

gc deletes a run's `mlflow-artifacts:` objects through the tracking server (MLFLOW_TRACKING_URI), as
MLflow's admin when logins are on: MLFLOW_TRACKING_PASSWORD, or in MLflow's own container the
admin's password it already holds (MLFLOW_ADMIN_PASSWORD). It imports only the standard library and
`trackstack.schedule` (croniter).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime

from trackstack import schedule

HEARTBEAT = schedule.heartbeat_file("gc")
# A gc that runs longer than this is stopped; the next scheduled time tries again.
RUN_TIMEOUT = 3 * 3600


def say(message: str) -> None:
    print(f"{datetime.now(UTC):%Y-%m-%dT%H:%M:%SZ} gc: {message}", flush=True)


def gc_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The environment `mlflow gc` runs with: the admin's password as the client's, in MLflow's own container
    too; without the Prometheus folder of a server that may run beside it (MLflow's workers write there)."""
    child = {name: value for name, value in env.items() if name != "PROMETHEUS_MULTIPROC_DIR"}
    if child.get("MLFLOW_TRACKING_USERNAME") and not child.get("MLFLOW_TRACKING_PASSWORD"):
        child["MLFLOW_TRACKING_PASSWORD"] = child.get("MLFLOW_ADMIN_PASSWORD", "")
    return child


def run_once(command: list[str], env: Mapping[str, str] | None = None) -> int:
    """Run `mlflow gc` once, its output passed on; its exit status."""
    started = time.monotonic()
    say("running " + " ".join(command))  # no secret in it: the store's URI names its user, PGPASSWORD the password
    try:
        result = subprocess.run(command, env=gc_environment(os.environ if env is None else env),
                                timeout=RUN_TIMEOUT, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        say(f"gc stopped after {RUN_TIMEOUT}s; the next scheduled time tries again")
        return 1
    verdict = "done" if result.returncode == 0 else f"failed (exit status {result.returncode})"
    say(f"gc {verdict} in {time.monotonic() - started:.0f}s")
    return result.returncode


def loop(expression: str, command: list[str]) -> None:
    """Sleep until the schedule's next time, run gc, and again."""
    schedule.start_heartbeat(HEARTBEAT)
    say(f"schedule {expression!r} (UTC)")

    def collect(_due: datetime) -> None:
        run_once(command)  # a failed run is logged; the next scheduled time tries again

    schedule.run_on_schedule(expression, collect, what="gc", say=say)


def healthy(now: float | None = None) -> bool:
    """The loop beats: its heartbeat file is younger than schedule.HEARTBEAT_STALE seconds."""
    return schedule.beating(HEARTBEAT, now)


def main(argv: list[str]) -> int:
    usage = f"usage: {argv[0]} loop|once|health [-- mlflow gc ...]"
    mode = argv[1] if len(argv) > 1 else ""
    command = argv[2:]
    if command[:1] == ["--"]:
        command = command[1:]
    if mode == "health":
        return 0 if healthy() else 1
    if mode not in ("loop", "once") or not command:
        print(usage, file=sys.stderr)
        return 2
    if mode == "once":
        return run_once(command)
    expression = os.environ.get("MLFLOW_GC_SCHEDULE", "")
    problem = schedule.problem(expression)
    if problem:
        print(f"MLFLOW_GC_SCHEDULE={expression!r}: {problem}", file=sys.stderr)
        return 2
    loop(expression, command)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
