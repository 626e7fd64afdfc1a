"""One round of each stack: start it, measure what the selected rows need, take it down again.

Every timed step first waits for a quiet machine and logs the load it ran under.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import BenchError, say
from bench.cpu import idle_cpu, wait_for_quiet
from bench.paired import interleave
from bench.probes import wait_ready
from bench.report import Row
from bench.stacks import (
    Baseline,
    Trackstack,
    compose_up_wait,
    containers,
    invoke_command,
    run_tool,
    wait_for_free_ports,
)
from bench.throughput import Clients
from trackstack.project import Project
from trackstack.settings import Settings

# The rows that need each stack running; the others (`list`, `image`) are measured once per invocation.
TRACKSTACK_ROWS = frozenset(
    {"ready_cold", "ready_warm", "overhead_cold", "overhead_warm", "up_running", "idle_cpu", "smoke"}
)
BASELINE_ROWS = frozenset({"ready_cold", "ready_warm", "idle_cpu"})
HEALTH_INTERVAL = 10  # seconds, templates/compose.yaml.j2
# Measured once per invocation with both stacks up side by side (`side_by_side`), in pairs.
PAIRED_ROWS = {"tput1": 1, "tput4": 4}


def load1() -> float:
    """The machine's one-minute load average, logged beside each step (0 where the OS has none)."""
    if sys.platform == "win32":  # no load average on Windows; the benchmark runs on Linux anyway
        return 0.0
    return os.getloadavg()[0]


def timed(func: Callable[[], object]) -> float:
    started = time.monotonic()
    func()
    return time.monotonic() - started


@dataclass
class Bench:
    """The selected rows, how to measure, and the log of every measurement."""

    rows: dict[str, Row]
    max_busy: float  # wait for the machine to be less busy than this before each step
    batches: int  # log_batch calls per throughput client in one batch of a pair
    pairs: int  # pairs of throughput batches per row
    pause: bool  # pause the other stack while one is measured
    settle: float  # seconds an idle stack gets before its CPU is measured
    idle_seconds: float  # ... and the window measured
    log: dict[str, Any]

    def wants(self, *keys: str) -> bool:
        return any(key in self.rows for key in keys)

    def add(self, key: str, value: float, *, compared: bool = False) -> None:
        if key in self.rows:
            (self.rows[key].compared if compared else self.rows[key].samples).append(value)

    def _begin(self, what: str) -> dict[str, Any]:
        """Wait for a quiet machine; the log entry of the step about to run, with the load it runs under."""
        busy = wait_for_quiet(self.max_busy)
        entry = {"what": what, "load1": round(load1(), 2), "busy": round(busy, 2)}
        self.log["runs"].append(entry)
        return entry

    def start(self, what: str, start: Callable[[], object], settings: Settings) -> dict[str, float]:
        """Run a start command, then poll: seconds until it returned, its own milestones, each probe."""
        entry = self._begin(what)
        started = time.monotonic()
        marks = start()
        command = time.monotonic() - started
        ready = wait_ready(settings, started)
        detail = {"command": command, **(marks if isinstance(marks, dict) else {}), **ready}
        entry["seconds"] = detail
        shown = ", ".join(f"{key} {value:.1f}" for key, value in detail.items() if key != "all")
        say(f"{what}: ready in {ready['all']:.1f}s ({shown})")
        return detail

    def command(self, what: str, command: Callable[[], object]) -> float:
        entry = self._begin(what)
        seconds = entry["seconds"] = timed(command)
        say(f"{what}: {seconds:.2f}s")
        return seconds

    def running(self, who: str, settings: Settings, project: Project, *, compared: bool) -> None:
        """The rows measured on a running, seeded stack of either kind: idle CPU."""
        if self.wants("idle_cpu"):
            time.sleep(self.settle)
            entry = self._begin(f"{who}, idle")
            cores = entry["cores_by_service"] = idle_cpu(containers(project), self.idle_seconds)
            entry["window"] = self.idle_seconds
            percent = 100 * sum(cores.values())
            say(f"{who}, idle: {percent:.1f}% of a core over {self.idle_seconds:.0f}s")
            self.add("idle_cpu", percent, compared=compared)

    def side_by_side(self, ts: Trackstack, baseline: Baseline) -> None:
        """The throughput rows: both stacks up at once (on different ports), short batches in pairs."""
        ts.down(volumes=True)
        baseline.down(data=True)
        wait_for_free_ports()
        wait_for_free_ports(tuple(ts.settings.ports.values()))
        try:
            try:
                self.start("trackstack, side by side", ts.invoke_up, ts.settings)
            except BenchError as error:
                # On a loaded machine a fresh pgAdmin can outlast its healthcheck's start period;
                # it answers later, and `invoke up` on the running stack then succeeds.
                reason = next((line for line in str(error).splitlines() if "error:" in line), "failed")
                say(f"trackstack side by side: {reason.strip()}; waiting for it, then `invoke up` again")
                wait_ready(ts.settings, time.monotonic())
                time.sleep(HEALTH_INTERVAL + 1)  # the engine's next healthcheck then sees it healthy
                self.start("trackstack, side by side, again", ts.invoke_up, ts.settings)
            self.start("baseline, side by side", baseline.up, baseline.settings)
            time.sleep(self.settle)
            projects = (ts.project, baseline.project)
            for key, count in PAIRED_ROWS.items():
                if not self.wants(key):
                    continue
                label = f"{count} client(s)"
                entry = self._begin(f"paired throughput, {label}")
                with Clients(count) as clients:
                    urls = (ts.settings.mlflow_url, baseline.settings.mlflow_url)
                    experiments = [clients.experiment(url) for url in urls]
                    measure = [
                        functools.partial(clients.measure, url, experiment, self.batches)
                        for url, experiment in zip(urls, experiments, strict=True)
                    ]
                    ours, theirs = interleave(("trackstack", "baseline"), measure, projects, self.pairs,
                                              pause=self.pause, log=self.log["runs"], label=label)  # fmt: skip
                entry["load1_after"] = round(load1(), 2)
                self.rows[key].samples.extend(ours)
                self.rows[key].compared.extend(theirs)
        finally:
            ts.down(volumes=True)
            baseline.down(data=True)


def trackstack_round(bench: Bench, ts: Trackstack) -> None:
    wait_for_free_ports()
    ts.down(volumes=True)
    detail = bench.start("trackstack cold", ts.invoke_up, ts.settings)
    bench.add("ready_cold", detail["all"])
    bench.add("overhead_cold", detail["command"])
    bench.running("trackstack", ts.settings, ts.project, compared=False)

    if bench.wants("smoke"):
        smoke = [sys.executable, "-m", "pytest", "tests/live", "-m", "live", "-p", "no:cacheprovider", "-q"]
        results: list[subprocess.CompletedProcess[str]] = []
        seconds = bench.command("smoke suite", lambda: results.append(run_tool(smoke, ts.env_file, check=False)))
        if results[0].returncode == 0:
            bench.add("smoke", seconds)
        else:
            last = (results[0].stdout.strip().splitlines() or ["failed"])[-1]
            bench.rows["smoke"].failures.append(last)
            say(f"smoke suite FAILED: {last}")

    if bench.wants("up_running"):
        bench.add("up_running", bench.command("trackstack up, running", ts.invoke_up))
        bench.add("up_running", bench.command("compose up --wait, running", lambda: compose_up_wait(ts.project)),
                  compared=True)  # fmt: skip

    if bench.wants("ready_warm", "overhead_warm"):
        ts.down(volumes=False)
        detail = bench.start("trackstack warm", ts.invoke_up, ts.settings)
        bench.add("ready_warm", detail["all"])
        bench.add("overhead_warm", detail["command"])
    # Orchestration: the same two states, plain Compose on trackstack's rendered files.
    if bench.wants("overhead_warm"):
        ts.down(volumes=False)
        seconds = bench.command("compose up --wait, warm", lambda: compose_up_wait(ts.project))
        bench.add("overhead_warm", seconds, compared=True)
    if bench.wants("overhead_cold"):
        ts.down(volumes=True)
        seconds = bench.command("compose up --wait, cold", lambda: compose_up_wait(ts.project))
        bench.add("overhead_cold", seconds, compared=True)
    ts.down(volumes=True)


def baseline_round(bench: Bench, baseline: Baseline) -> None:
    wait_for_free_ports()
    baseline.down(data=True)
    detail = bench.start("baseline cold", baseline.up, baseline.settings)
    bench.add("ready_cold", detail["all"], compared=True)
    bench.running("baseline", baseline.settings, baseline.project, compared=True)

    if bench.wants("ready_warm"):
        if "baseline_verbatim_warm_start" not in bench.log:
            # Once per invocation: does the verbatim baseline start again on its own data?
            baseline.down(data=False)
            started = time.monotonic()
            result = baseline.up(check=False)
            outcome = {
                "exit_code": result.returncode,
                "seconds": round(time.monotonic() - started, 1),
                "message": (result.stderr.strip().splitlines() or [""])[-1],
            }
            bench.log["baseline_verbatim_warm_start"] = outcome
            say(f"verbatim baseline, warm start: exit {outcome['exit_code']}: {outcome['message']}")
        baseline.down(data=False)
        restart = "baseline warm (mc mb --ignore-existing)"
        detail = bench.start(restart, lambda: baseline.up(restartable=True), baseline.settings)
        bench.add("ready_warm", detail["all"], compared=True)
    baseline.down(data=True)


def list_times(bench: Bench, env_file: Path, workdir: Path, rounds: int) -> None:
    """`invoke --list` here and on an empty collection, alternately."""
    empty = workdir / "empty-collection"
    empty.mkdir(exist_ok=True)
    (empty / "tasks.py").write_text(
        "from invoke import Collection\n\nns = Collection()\n", encoding="utf-8", newline="\n"
    )
    # An empty collection makes `invoke --list` exit 1 ("No tasks found"): only the time counts.
    theirs = [*invoke_command(), "--search-root", str(empty), "--list"]
    for _ in range(rounds):
        bench.add("list", timed(lambda: run_tool([*invoke_command(), "--list"], env_file)))
        bench.add("list", timed(lambda: run_tool(theirs, env_file, check=False)), compared=True)
