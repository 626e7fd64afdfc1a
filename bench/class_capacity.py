"""Class capacity: N simulated students logging like a training loop, at once, against each stack given.

    python bench/class_capacity.py --stack compose=http://localhost:5001 \\
        --stack course=http://localhost:5000 [--students 10,30,60,100] [--minutes 3]

Each student is a thread with its own `MlflowClient` (clients at their defaults: no retry setting of
ours) and, on a stack with logins (`--logins STACK`), its own login: the logins are made with
`invoke user.import` of a generated roster and read back from the password file it writes. Every
second a student logs a batch of 10 metrics (`log_batch`), every 30 s a 100 KB artifact, and every
2 minutes it ends its run and starts a new one. Stacks are measured one after the other at each N
(side by side, not at once). Reported per stack and N: p50/p95/p99 latency of each call type, the
failed calls, and the CPU this process used (the clients' own cost: near 100 % of a core per core
means the clients, not the server, bound the numbers). A table on the terminal, JSON into
bench/results/class-<time>.json. The course's stack: start it as bench/run.py does
(bench/stacks.py: Baseline) and pass its URL; Swarm: its https URL and `--ca-file` of its proxy.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

# The training loop of one student (issue 29).
METRICS_EVERY = 1.0
METRICS_PER_BATCH = 10
ARTIFACT_EVERY = 30.0
ARTIFACT_BYTES = 100 * 1024
RUN_EVERY = 120.0
CALLS = ("create_run", "log_batch", "log_artifact", "end_run")


@dataclass(frozen=True, order=True)
class Action:
    """One call a student makes `at` seconds after its start."""

    at: float
    call: str


def schedule(duration: float, offset: float = 0.0) -> list[Action]:
    """A student's calls over `duration` seconds, in order; `offset` (0 <= offset < 1 s) staggers students so
    that N clients do not all call in the same millisecond. A run starts at 0 and every RUN_EVERY, ending the
    previous one first; the last run ends at `duration`."""
    actions = [Action(offset, "create_run")]
    for start in _ticks(RUN_EVERY, duration, offset)[1:]:
        actions += [Action(start, "end_run"), Action(start, "create_run")]
    actions += [Action(t, "log_batch") for t in _ticks(METRICS_EVERY, duration, offset)]
    actions += [Action(t, "log_artifact") for t in _ticks(ARTIFACT_EVERY, duration, offset)[1:]]
    actions.append(Action(duration + offset, "end_run"))
    order = {"end_run": 0, "create_run": 1, "log_batch": 2, "log_artifact": 3}
    return sorted(actions, key=lambda action: (action.at, order[action.call]))


def _ticks(every: float, duration: float, offset: float) -> list[float]:
    return [offset + every * i for i in range(math.floor(duration / every - 1e-9) + 1)]


def percentile(values: Sequence[float], share: float) -> float:
    """The `share` (0-100) percentile by linear interpolation between the closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * share / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass
class Calls:
    """What the students of one round met: latencies (s) of the calls that succeeded, and the failures."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: {call: [] for call in CALLS})
    failures: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CALLS, 0))
    errors: list[str] = field(default_factory=list)  # the first few, to say what failed
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, call: str, seconds: float, error: BaseException | None) -> None:
        with self.lock:
            if error is None:
                self.latencies[call].append(seconds)
                return
            self.failures[call] += 1
            if len(self.errors) < 5:
                self.errors.append(f"{call}: {type(error).__name__}: {str(error)[:200]}")

    def summary(self) -> dict[str, dict[str, float]]:
        """Per call type: count, failed, p50/p95/p99 in ms."""
        return {
            call: {
                "count": len(self.latencies[call]),
                "failed": self.failures[call],
                **{f"p{p}_ms": round(percentile(self.latencies[call], p) * 1000, 1) for p in (50, 95, 99)},
            }
            for call in CALLS
        }


def student(client: Any, experiment: str, actions: list[Action], calls: Calls, start: float, scratch: Path) -> None:
    """Run one student's actions at their times (its experiment made first, untimed); a failed call is counted
    and the loop goes on."""
    from mlflow.entities import Metric

    try:
        experiment_id = client.create_experiment(experiment)
    except Exception as caught:  # counted as its first run's failure: it cannot start
        calls.record("create_run", 0.0, caught)
        return
    artifact = scratch / f"weights-{threading.get_ident()}.bin"
    artifact.write_bytes(os.urandom(ARTIFACT_BYTES))
    run_id = ""
    step = 0
    for action in actions:
        delay = start + action.at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        began = time.perf_counter()
        error: BaseException | None = None
        try:
            if action.call == "create_run":
                run_id = client.create_run(experiment_id).info.run_id
            elif action.call == "end_run" and run_id:
                client.set_terminated(run_id)
            elif action.call == "log_batch" and run_id:
                now = int(time.time() * 1000)
                metrics = [Metric(f"m{i}", float(step), now, step) for i in range(METRICS_PER_BATCH)]
                client.log_batch(run_id, metrics=metrics)
                step += 1
            elif action.call == "log_artifact" and run_id:
                client.log_artifact(run_id, str(artifact))
            else:
                continue  # no run: its create_run failed, counted there
        except Exception as caught:  # every failure a student meets is counted
            error = caught
        calls.record(action.call, time.perf_counter() - began, error)


def read_logins(path: Path) -> list[tuple[str, str]]:
    """(login, password) of each row of the password file `invoke user.import` wrote."""
    with path.open(newline="", encoding="utf-8") as stream:
        rows = list(csv.DictReader(stream))
    return [(row["username"], row["password"]) for row in rows]


def make_logins(count: int, env_file: str, folder: Path) -> list[tuple[str, str]]:
    """`invoke user.import` of a roster of `count` students (bench-student-001...); their logins and passwords."""
    roster = folder / "roster.csv"
    roster.write_text("username\n" + "".join(f"bench-student-{i:03d}\n" for i in range(1, count + 1)), encoding="utf-8")
    out = folder / "passwords.csv"
    env = {**os.environ, "TRACKSTACK_ENV_FILE": env_file} if env_file else dict(os.environ)
    subprocess.run(["invoke", "user.import", str(roster), "--out", str(out), "--force"], cwd=ROOT, env=env, check=True)
    return read_logins(out)[:count]


_LOGIN = threading.local()  # the login of the student this thread is


def use_thread_logins(uri: str, ca_file: str) -> None:
    """Make MLflow send each thread's own login (`_LOGIN.value`) and trust `ca_file`.

    MLflow reads credentials from the process's environment and shares one store per URI between
    clients, so N threads would be one student. Its credential lookups (the tracking store's and the
    artifact proxy's, both `get_default_host_creds`) are wrapped to put the thread's login in.
    """
    import copy

    from mlflow.store.artifact import http_artifact_repo
    from mlflow.tracking import MlflowClient
    from mlflow.utils import credentials

    original = credentials.get_default_host_creds

    def thread_creds(store_uri: str) -> Any:
        creds = copy.copy(original(store_uri))  # type: ignore[no-untyped-call]
        login = getattr(_LOGIN, "value", None)
        if login:
            creds.username, creds.password = login
        if ca_file:
            creds.server_cert_path = ca_file
        return creds

    credentials.get_default_host_creds = thread_creds
    setattr(http_artifact_repo, "get_default_host_creds", thread_creds)  # noqa: B010 - mypy: not re-exported
    store = MlflowClient(tracking_uri=uri)._tracking_client.store
    store.get_host_creds = lambda: thread_creds(uri)


def student_thread(login: tuple[str, str] | None, uri: str, *args: Any) -> None:
    """A student's thread: its login, its own client, its actions."""
    from mlflow.tracking import MlflowClient

    _LOGIN.value = login
    student(MlflowClient(tracking_uri=uri), *args)


def measure(uri: str, n: int, minutes: float, logins: list[tuple[str, str]] | None, ca_file: str) -> dict[str, Any]:
    """One round: N students for `minutes` against `uri`; the summary and this process's CPU."""
    use_thread_logins(uri, ca_file)
    _LOGIN.value = logins[0] if logins else None
    # One experiment of the first student's, which the others may log to only with MLFLOW_DEFAULT_PERMISSION
    # EDIT or MANAGE: each student makes its own instead, as a class does.
    experiment = f"class-capacity-{n}-{int(time.time())}"
    calls = Calls()
    duration = minutes * 60
    cpu_before, wall_before = time.process_time(), time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        start = time.monotonic() + 2.0
        threads = [
            threading.Thread(
                target=student_thread,
                args=(
                    logins[i] if logins else None,
                    uri,
                    f"{experiment}-{i}",
                    schedule(duration, offset=i / n),
                    calls,
                    start,
                    Path(scratch),
                ),
                daemon=True,
            )
            for i in range(n)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    wall = time.monotonic() - wall_before
    cpu = time.process_time() - cpu_before
    return {
        "students": n,
        "seconds": round(wall, 1),
        "calls": calls.summary(),
        "errors": calls.errors,
        "client_cpu_cores": round(cpu / wall, 2),  # compare with os.cpu_count(): near it, the clients bound it
    }


def table(results: list[dict[str, Any]]) -> str:
    """One line per stack, N and call type: p50/p95/p99 (ms), calls and failures."""
    header = ("stack", "N", "call", "p50 ms", "p95 ms", "p99 ms", "calls", "failed", "client CPU")
    lines: list[tuple[str, ...]] = [header]
    for result in results:
        for call, row in result["calls"].items():
            lines.append((result["stack"], str(result["students"]), call, str(row["p50_ms"]), str(row["p95_ms"]),
                          str(row["p99_ms"]), str(row["count"]), str(row["failed"]),
                          f"{result['client_cpu_cores']} of {os.cpu_count()} cores"))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    stack_help = "a tracking server to measure, e.g. compose=http://localhost:5001 (repeat for more)"
    parser.add_argument("--stack", action="append", required=True, metavar="NAME=URL", help=stack_help)
    parser.add_argument("--students", default="10,30,60,100", help="the N to measure, comma-separated")
    parser.add_argument("--minutes", type=float, default=3.0, help="how long each round logs (default 3)")
    logins_help = "this stack has MLFLOW_AUTH=true: each student logs in (made by `invoke user.import`)"
    parser.add_argument("--logins", action="append", default=[], metavar="NAME", help=logins_help)
    parser.add_argument("--env-file", default="", help="TRACKSTACK_ENV_FILE for `invoke user.import` (default .env)")
    parser.add_argument("--ca-file", default="", help="the CA certificate of a Swarm proxy's https URL")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, run: Callable[..., dict[str, Any]] = measure) -> int:
    args = parse_args(argv)
    stacks = dict(item.split("=", 1) for item in args.stack)
    counts = [int(n) for n in args.students.split(",") if n.strip()]
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        logins = make_logins(max(counts), args.env_file, Path(folder)) if args.logins else []
        for n in counts:
            for name, uri in stacks.items():
                print(f"class capacity: {n} students on {name} ({uri}) for {args.minutes} min", flush=True)
                result = run(uri, n, args.minutes, logins[:n] if name in args.logins else None, args.ca_file)
                results.append({"stack": name, **result})
    print(table(results))
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"class-{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps({"cpu_count": os.cpu_count(), "results": results}, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
