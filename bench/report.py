"""The results: rows of samples, their statistics and ratios, the printed table and the JSON record."""

from __future__ import annotations

import json
import os
import platform
import socket
import statistics
import subprocess
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from bench import ROOT, say
from bench.paired import paired_stats
from trackstack.console import table

Kind = Literal["ratio_at_most", "ratio_at_least", "at_most", "extra_at_most"]


@dataclass(frozen=True)
class Target:
    """What a row must show: a bound on the ratio ours/theirs, on our value alone, or on ours minus theirs."""

    kind: Kind
    bound: float

    def met(self, ours: float, theirs: float | None) -> bool | None:
        if self.kind == "at_most":
            return ours <= self.bound
        if theirs is None:
            return None
        if self.kind == "extra_at_most":
            return ours - theirs <= self.bound
        if not theirs:
            return None
        ratio = ours / theirs
        return ratio <= self.bound if self.kind == "ratio_at_most" else ratio >= self.bound

    def text(self, unit: str) -> str:
        return {
            "ratio_at_most": f"<= {self.bound:.1f}x",
            "ratio_at_least": f">= {self.bound:.1f}x",
            "at_most": f"<= {self.bound:g} {unit}",
            "extra_at_most": f"<= comparison + {self.bound:g}",
        }[self.kind]


@dataclass
class Row:
    key: str
    title: str
    unit: str
    ours: str  # what is measured on trackstack
    theirs: str  # ... and what it is compared with ("" when nothing)
    target: Target | None = None
    # Paired rows (bench/paired.py): samples[i] and compared[i] were measured back to back, and
    # the ratio is the median of the per-pair ratios rather than the ratio of the medians.
    paired: bool = False
    samples: list[float] = field(default_factory=list)
    compared: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ours, theirs = stats(self.samples), stats(self.compared)
        pairs = paired_stats(self.samples, self.compared) if self.paired else {}
        if pairs:
            ratio: float | None = pairs["median"]
            met = self.target.met(pairs["median"], 1.0) if self.target else None
        else:
            ratio = ours["median"] / theirs["median"] if ours and theirs and theirs["median"] else None
            met = self.target.met(ours["median"], theirs.get("median")) if self.target and ours else None
        return {
            "title": self.title,
            "unit": self.unit,
            "trackstack": {"what": self.ours, **ours, "samples": self.samples},
            "comparison": {"what": self.theirs, **theirs, "samples": self.compared} if self.theirs else None,
            "ratio": ratio,
            **({"pairs": pairs} if pairs else {}),
            "target": self.target.text(self.unit) if self.target else None,
            "met": met,
            "failures": self.failures,
        }


def rows() -> dict[str, Row]:
    """Every row the benchmark knows, in the order of the table; `--rows` picks some by key."""
    at_most: Kind = "ratio_at_most"
    at_least: Kind = "ratio_at_least"
    table = [
        Row("ready_cold", "time to ready, cold", "s", "invoke up", "baseline: compose up -d, then poll",
            Target(at_most, 0.8)),
        Row("ready_warm", "time to ready, warm", "s", "invoke up", "baseline: compose up -d, then poll",
            Target(at_most, 0.6)),
        Row("overhead_cold", "orchestration, cold", "s", "invoke up", "docker compose up -d --wait",
            Target(at_most, 1.1)),
        Row("overhead_warm", "orchestration, warm", "s", "invoke up", "docker compose up -d --wait",
            Target(at_most, 1.1)),
        Row("up_running", "up on a running stack", "s", "invoke up", "docker compose up -d --wait",
            Target("at_most", 2.0)),
        Row("list", "task start-up", "s", "invoke --list", "invoke --list, empty collection", Target(at_most, 1.5)),
        Row("image", "MLflow image", "MB", "trackstack image", "baseline Dockerfile, same base", Target(at_most, 0.7)),
        Row("tput1", "throughput, 1 client", "metrics/s", "trackstack", "baseline, side by side",
            Target(at_least, 1.0), paired=True),
        Row("tput4", "throughput, 4 clients", "metrics/s", "trackstack", "baseline, side by side",
            Target(at_least, 1.0), paired=True),
        Row("idle_cpu", "idle CPU", "% of a core", "trackstack, idle", "baseline, idle",
            Target("extra_at_most", 5.0)),
        Row("smoke", "smoke suite wall time", "s", "pytest tests/live", ""),
    ]  # fmt: skip
    return {row.key: row for row in table}


def stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def fmt(value: float) -> str:
    """Three significant figures or so: 0.161, 5.20, 25.9, 5,254."""
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}" if value >= 1 else f"{value:.3f}"


def cell(summary: Mapping[str, Any] | None) -> str:
    """A median with its range: `25.9 [25.3-26.9]`, or the value alone from one sample."""
    if not summary or "median" not in summary:
        return "-"
    if summary["n"] == 1:
        return fmt(summary["median"])
    return f"{fmt(summary['median'])} [{fmt(summary['min'])}-{fmt(summary['max'])}]"


def ratio_text(ratio: float | None, pairs: Mapping[str, Any] | None = None) -> str:
    """`1.19x`, or for a paired row the median per-pair ratio with its quartiles: `0.98x [0.95-1.02]`."""
    if ratio is None:
        return "-"
    if pairs and pairs.get("n", 0) > 1:
        return f"{ratio:.2f}x [{pairs['q1']:.2f}-{pairs['q3']:.2f}]"
    return f"{ratio:.2f}x"


def render_table(summaries: Mapping[str, Mapping[str, Any]]) -> str:
    header = ("row", "unit", "trackstack", "comparison", "ratio", "target", "met")
    lines: list[tuple[str, ...]] = [header]
    for item in summaries.values():
        met = {True: "yes", False: "NO", None: "-"}[item["met"]]
        lines.append(
            (item["title"], item["unit"], cell(item["trackstack"]), cell(item["comparison"]),
             ratio_text(item["ratio"], item.get("pairs")), item["target"] or "-", met)
        )  # fmt: skip
    return table(lines)


def invoke_up_phases(runs: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Medians of when `invoke up` had the stack healthy, and how long seeding took after that."""
    phases = {}
    marks: dict[str, list[Mapping[str, float]]] = {}
    for run in runs:
        seconds = run.get("seconds")
        if run["what"].startswith("trackstack ") and isinstance(seconds, Mapping) and "stack_healthy" in seconds:
            marks.setdefault(run["what"].removeprefix("trackstack "), []).append(seconds)
    for state, found in marks.items():
        phases[state] = {
            "stack_healthy": statistics.median(m["stack_healthy"] for m in found),
            "seeding": statistics.median(m["seeded"] - m["stack_healthy"] for m in found),
        }
    return phases


def _output(args: list[str]) -> str:
    result = subprocess.run(args, capture_output=True, text=True, cwd=ROOT, check=False)
    return result.stdout.strip()


def machine() -> dict[str, Any]:
    def first(path: str, prefix: str) -> str:
        return next(
            (ln.split(":", 1)[1].strip() for ln in Path(path).read_text().splitlines() if ln.startswith(prefix)), ""
        )

    memory_kib = first("/proc/meminfo", "MemTotal").split(" ")[0] or "0"
    return {
        "hostname": socket.gethostname(),
        "os": platform.platform(),
        "cpu": first("/proc/cpuinfo", "model name") or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gib": round(int(memory_kib) / 1024 / 1024, 1),
        "docker_engine": _output(["docker", "version", "--format", "{{.Server.Version}} (API {{.Server.APIVersion}})"]),
        "compose": _output(["docker", "compose", "version", "--short"]),
        "python": platform.python_version(),
    }


def uptime() -> str:
    return _output(["uptime"])


def git_revision() -> dict[str, Any]:
    dirty = _output(["git", "status", "--porcelain", "--", "src", "templates", ".env.example", "bench"])
    return {"commit": _output(["git", "rev-parse", "HEAD"]), "dirty": bool(dirty)}


RESULTS = ROOT / "bench" / "results"


def save_report(report: Mapping[str, Any], kind: str, stamp: datetime, output: Path | None = None) -> Path:
    """Write a bench script's report as JSON: `output`, or bench/results/<kind>-<UTC time>.json."""
    path = output or RESULTS / f"{kind}-{stamp.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8", newline="\n")
    say(f"saved {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
    return path
