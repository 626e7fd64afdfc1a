"""Throughput measured in pairs: both stacks up side by side, short batches interleaved A/B/B/A.

On a shared, noisy machine two stacks measured minutes apart see different neighbours; two
batches measured seconds apart see nearly the same. So each pair is one short batch on each
stack, back to back, and the row's ratio is the median of the per-pair ratios, with their
interquartile range and a bootstrap interval of that median. The order alternates (A B, B A,
A B, ...) so that a trend within a pair favours neither stack. While one stack is measured the
other is paused (`docker pause`: its processes are frozen, so its healthchecks and background
work cost nothing); `--no-pause` leaves it idling instead.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bench import say
from bench.cpu import stack_cpu_ns
from bench.stacks import containers
from trackstack import engine
from trackstack.project import Project
from trackstack.services import ENDPOINTS

# trackstack's host ports beside the baseline, which holds the course's: each course port plus this.
SIDE_BY_SIDE_OFFSET = 20000
WARMUP_BATCHES = 2  # per stack, before a row's pairs
THAW = 3.0  # seconds a thawed stack gets before its batch (its healthchecks time out after 5 s)


def pair_order(index: int) -> tuple[int, int]:
    """Which stack goes first in pair `index`: (0, 1), (1, 0), (0, 1), ... (0 is trackstack)."""
    return (0, 1) if index % 2 == 0 else (1, 0)


def ratios(ours: Sequence[float], theirs: Sequence[float]) -> list[float]:
    """Per-pair ratios ours/theirs; the two lists are the pairs' halves, in order."""
    if len(ours) != len(theirs):
        raise ValueError(f"{len(ours)} samples against {len(theirs)}: not pairs")
    return [a / b for a, b in zip(ours, theirs, strict=True) if b]


def quartiles(values: Sequence[float]) -> tuple[float, float]:
    """First and third quartile (inclusive method: they stay within the samples)."""
    if len(values) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def bootstrap_median(
    values: Sequence[float], level: float = 0.95, resamples: int = 2000, seed: int = 12
) -> tuple[float, float]:
    """A percentile-bootstrap interval of the median (fixed seed: the same samples give the same interval)."""
    if not values:
        raise ValueError("no values")
    rng = random.Random(seed)  # noqa: S311 - resampling statistics, not secrets
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(resamples))
    tail = (1 - level) / 2
    low = medians[int(tail * (resamples - 1))]
    high = medians[round((1 - tail) * (resamples - 1))]
    return low, high


def paired_stats(ours: Sequence[float], theirs: Sequence[float]) -> dict[str, Any]:
    """The row's ratio from pairs: median of the per-pair ratios, its quartiles and 95% interval."""
    found = ratios(ours, theirs)
    if not found:
        return {}
    q1, q3 = quartiles(found)
    low, high = bootstrap_median(found)
    return {"median": statistics.median(found), "q1": q1, "q3": q3, "ci95": [low, high], "n": len(found)}


def side_by_side_env(source: Path, target: Path) -> None:
    """A copy of trackstack's bench env file whose host ports leave the course's to the baseline."""
    shifted = {endpoint.port_key: endpoint.course_port + SIDE_BY_SIDE_OFFSET for endpoint in ENDPOINTS}
    lines = source.read_text(encoding="utf-8").splitlines(keepends=True)
    target.write_text(
        "".join(f"{key}={shifted[key]}\n" if (key := line.partition("=")[0]) in shifted else line for line in lines),
        encoding="utf-8",
        newline="\n",
    )
    target.chmod(0o600)


@contextmanager
def paused(project: Project | None) -> Iterator[None]:
    """Freeze a stack's containers for the duration (nothing when `project` is None)."""
    ids = sorted(containers(project)) if project else []
    if ids:
        engine.run(["docker", "pause", *ids], capture=True)
    try:
        yield
    finally:
        if ids:
            engine.run(["docker", "unpause", *ids], capture=True)


def interleave(
    names: tuple[str, str],
    measure: Sequence[Callable[[], float]],
    projects: tuple[Project, Project],
    pairs: int,
    *,
    pause: bool,
    log: list[dict[str, Any]],
    label: str,
) -> tuple[list[float], list[float]]:
    """`pairs` pairs of batches, alternating which stack goes first; the rates of each stack, pair by pair."""
    rates: tuple[list[float], list[float]] = ([], [])
    members = [containers(project) for project in projects]
    # Untimed: a fresh MLflow worker is slow for its first requests (lazy imports, SQLAlchemy's
    # statement cache), and which worker takes a client's connection is the kernel's choice: each
    # stack's first batches of a row measure its workers' warm-up, not the server.
    for side in range(2):
        with paused(projects[1 - side] if pause else None):
            time.sleep(THAW if pause else 0)
            for _ in range(WARMUP_BATCHES):
                measure[side]()
    for index in range(pairs):
        for side in pair_order(index):
            other = projects[1 - side]
            load1 = round(_load1(), 2)
            with paused(other if pause else None):
                # Healthcheck execs that hung while this stack was paused finish when it thaws:
                # let them, so that they do not land in this stack's batch.
                time.sleep(THAW if pause else 0)
                before = cpu_seconds(members[side])
                started = time.monotonic()
                rate = measure[side]()
                seconds = time.monotonic() - started
                spent = cpu_seconds(members[side])
            rates[side].append(rate)
            log.append({"what": f"{names[side]}, {label}", "pair": index + 1, "metrics_per_s": rate,
                        "seconds": round(seconds, 2), "load1": load1,
                        "cpu_seconds": {key: round(spent[key] - before[key], 3) for key in spent}})  # fmt: skip
        ratio = rates[0][-1] / rates[1][-1] if rates[1][-1] else float("nan")
        say(f"{label}, pair {index + 1}/{pairs}: {rates[0][-1]:,.0f} vs {rates[1][-1]:,.0f} metrics/s ({ratio:.2f}x)")
    return rates


def cpu_seconds(members: dict[str, str]) -> dict[str, float]:
    """CPU seconds so far of a stack's containers (by service) and of the engine on their behalf.

    Read around each batch, so that the JSON says where a slower batch spent its CPU: in the
    server, the database, another service's background work, or the engine (healthchecks)."""
    return {key: ns / 1e9 for key, ns in stack_cpu_ns(members).items()}


def _load1() -> float:
    with open("/proc/loadavg", encoding="utf-8") as stream:
        return float(stream.read().split()[0])
