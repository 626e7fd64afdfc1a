"""The benchmark: trackstack side by side with the course's hand-made stack (see bench/README.md).

`run.py` is the command; the other modules each do one job: `probes` (is a stack ready),
`stacks` (the two stacks and how to start them), `start` (`invoke up` with its StartReport),
`cpu` (machine load and a stack's idle CPU), `throughput`, `rounds` (one round of each stack)
and `report` (rows, statistics, the table and the JSON). Optional entry points, each its own run:
`swarm`, `class_capacity`, `artifact_stores` and `class_backup` (with `dataset`, on `scratch`'s stack).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class BenchError(Exception):
    """A step of the benchmark failed; the message says which and why."""


def say(message: str) -> None:
    print(f"bench: {message}", flush=True)
