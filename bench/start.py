"""`invoke up` in a fresh interpreter, exactly as a user runs it, recording what `stack.start` returns.

    python -m bench.start REPORT.json    (from the checkout; TRACKSTACK_ENV_FILE names the env file)

The benchmark times this process and reads the milestones from REPORT.json: when `stack.start`
was called (on the machine's monotonic clock, which every process shares) and its StartReport
(seconds until every service was healthy, and until seeding was done). Nothing that `invoke up`
prints is parsed.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from invoke.main import program

import trackstack.targets.compose.apply as stack


def recording(start: Callable[..., stack.StartReport], out: Path) -> Callable[..., stack.StartReport]:
    """`start`, writing its StartReport and the moment it was called to `out` as JSON."""

    def start_and_record(*args: Any, **kwargs: Any) -> stack.StartReport:
        called = time.monotonic()
        report = start(*args, **kwargs)
        out.write_text(json.dumps({"called": called, **dataclasses.asdict(report)}), encoding="utf-8", newline="\n")
        return report

    return start_and_record


def main(argv: list[str]) -> None:
    stack.start = recording(stack.start, Path(argv[0]))
    program.run(["invoke", "up"])


if __name__ == "__main__":
    main(sys.argv[1:])
