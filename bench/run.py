"""Benchmark trackstack side by side with the course's hand-made stack.

    python bench/run.py [--repeat N] [--rows ROW,ROW]      (or: nox -s bench -- ...)

One invocation measures both stacks on the same images, one at a time on the same host ports,
prints a table of medians (with min and max) and ratios, and writes every sample to
bench/results/<time>.json. bench/README.md says what each row measures.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

if not __package__:  # run as `python bench/run.py`: the bench package lives in the checkout, not the venv
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import ROOT, BenchError, say
from bench.paired import SIDE_BY_SIDE_OFFSET, side_by_side_env
from bench.report import git_revision, invoke_up_phases, machine, render_table, rows, uptime
from bench.rounds import (
    BASELINE_ROWS,
    PAIRED_ROWS,
    TRACKSTACK_ROWS,
    Bench,
    baseline_round,
    list_times,
    trackstack_round,
)
from bench.stacks import (
    BASELINE_PROJECT,
    BASELINE_SOURCE,
    PROJECT,
    Baseline,
    Trackstack,
    build_baseline_image,
    course_mlflow_version,
    image_size,
    make_env_file,
)
from trackstack.errors import TrackstackError
from trackstack.paths import constraints_file

RESULTS = ROOT / "bench" / "results"
NOTES = (
    "MLflow: both stacks run the course's release (its requirements.txt). The baseline's image is its own "
    "Dockerfile, FROM rewritten to trackstack's MLFLOW_BASE_IMAGE and its pip install held to trackstack's lock "
    "of that release (unpinned, today's PyPI brings SQLAlchemy 2.1, which breaks the release at start-up); "
    "trackstack's image is its own (templates/Dockerfile.mlflow.j2).",
    "Image row: those two images.",
    "Warm baseline: the verbatim minio-setup (`mc mb` without --ignore-existing) fails on existing data "
    "(see baseline_verbatim_warm_start); warm runs add --ignore-existing and change nothing else.",
    "Cold = images present, volumes/bind mounts empty; warm = containers removed by `down`, data kept. "
    "Ready = Postgres SELECT 1, MinIO /minio/health/live, MLflow /health, pgAdmin /misc/ping and the bucket.",
    "Throughput: both stacks up side by side (trackstack's ports shifted), short batches in pairs, "
    "alternately A-B and B-A; the ratio is the median of the per-pair ratios [interquartile range] "
    "(95% bootstrap interval in the JSON); the other stack is paused during a batch unless --no-pause.",
    "Idle CPU: the growth of the running containers' cgroup CPU counters over the window, after the settle time.",
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    keys = list(rows())
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="rounds of every stack measurement (default 3)")
    parser.add_argument(
        "--rows",
        type=lambda text: [key.strip() for key in text.split(",") if key.strip()],
        default=keys,
        help=f"comma-separated rows to measure (default all): {', '.join(keys)}",
    )
    parser.add_argument(
        "--batches", type=int, default=10, help="log_batch calls of 1000 metrics per client in one batch (default 10)"
    )
    parser.add_argument("--pairs", type=int, default=20, help="pairs of batches per throughput row (default 20)")
    parser.add_argument(
        "--no-pause",
        dest="pause",
        action="store_false",
        help="let the other stack idle during a throughput batch instead of pausing it",
    )
    parser.add_argument("--idle-seconds", type=float, default=30.0, help="window of the idle CPU row (default 30)")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds a started stack idles before (default 10)")
    parser.add_argument("--env-file", type=Path, default=ROOT / ".env.bench", help="trackstack's env file")
    parser.add_argument("--baseline", type=Path, default=BASELINE_SOURCE, help="the course's compose folder")
    parser.add_argument("--no-cache", action="store_true", help="build the baseline image without the layer cache")
    parser.add_argument(
        "--max-busy",
        type=float,
        default=0.35,
        help="before each timed step, wait up to 5 min for the CPU to be less busy than this (default 0.35; 1: never)",
    )
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default bench/results/<time>.json)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.rows) - set(keys))
    if unknown:
        parser.error(f"unknown rows {', '.join(unknown)}; choose from {', '.join(keys)}")
    return args


@contextmanager
def cleanup(ts: Trackstack, baseline: Baseline) -> Iterator[None]:
    try:
        yield
    finally:
        say("cleaning up: both stacks down, their volumes and data removed")
        ts.down(volumes=True)
        baseline.down(data=True)


def measure(bench: Bench, ts: Trackstack, args: argparse.Namespace, workdir: Path) -> None:
    settings = ts.settings
    image = f"{BASELINE_PROJECT}-mlflow:{settings.mlflow_version}"
    say(f"building the baseline's MLflow Dockerfile as {image}, on trackstack's base and lock (not timed)")
    lock = constraints_file(settings.mlflow_version)
    build_baseline_image(args.baseline, settings.mlflow_base_image, lock, image, workdir, args.no_cache)
    baseline = Baseline(args.baseline, workdir, settings, image)
    with cleanup(ts, baseline):
        if bench.wants("image"):
            bench.add("image", image_size(settings.mlflow_image) / 1e6)
            bench.add("image", image_size(image) / 1e6, compared=True)
        if bench.wants("list"):
            list_times(bench, ts.env_file, workdir, 5 * args.repeat)
        if bench.wants(*PAIRED_ROWS):
            side_env = workdir / "env.side-by-side"
            side_by_side_env(ts.env_file, side_env)
            say("throughput: both stacks side by side, trackstack on ports shifted by "
                f"{SIDE_BY_SIDE_OFFSET}, {args.pairs} pairs of batches per row")  # fmt: skip
            bench.side_by_side(Trackstack(side_env), baseline)
        blocks: list[tuple[str, Callable[[], None], Callable[[], None]]] = []
        if bench.wants(*TRACKSTACK_ROWS):
            blocks.append(("trackstack", lambda: trackstack_round(bench, ts), lambda: ts.down(volumes=True)))
        if bench.wants(*BASELINE_ROWS):
            blocks.append(("baseline", lambda: baseline_round(bench, baseline), lambda: baseline.down(data=True)))
        for index in range(args.repeat if blocks else 0):
            say(f"round {index + 1} of {args.repeat}")
            # Alternate which stack goes first, so that drift favours neither.
            for name, block, tidy in blocks if index % 2 == 0 else reversed(blocks):
                try:
                    block()
                except (BenchError, TrackstackError) as error:  # e.g. the shared engine restarted: skip this round
                    say(f"round {index + 1}, {name} failed: {error}")
                    bench.log["failures"].append({"round": index + 1, "stack": name, "error": str(error)})
                    tidy()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = dt.datetime.now(dt.UTC)
    env_file = args.env_file.resolve()
    course_release = course_mlflow_version(args.baseline)
    if not env_file.exists():
        make_env_file(env_file, course_release)
    ts = Trackstack(env_file)
    if ts.settings.mlflow_version != course_release:
        raise SystemExit(
            f"bench: {env_file} has MLFLOW_VERSION={ts.settings.mlflow_version}, the course runs {course_release}: "
            "the rows compare orchestration on the same server code. Delete the file to have it written again."
        )
    all_rows = rows()
    bench = Bench(
        rows={key: row for key, row in all_rows.items() if key in args.rows},
        max_busy=args.max_busy,
        batches=args.batches,
        pairs=args.pairs,
        pause=args.pause,
        settle=args.settle,
        idle_seconds=args.idle_seconds,
        log={"runs": [], "failures": []},
    )
    load_before = uptime()
    say(f"load before: {load_before}")
    say("building trackstack's images if needed (not timed)")
    ts.prepare()
    with tempfile.TemporaryDirectory(prefix="trackstack-bench-") as tmp:
        measure(bench, ts, args, Path(tmp))

    summaries = {key: row.summary() for key, row in bench.rows.items()}
    phases = invoke_up_phases(bench.log["runs"])
    report: dict[str, Any] = {
        "date": stamp.isoformat(timespec="seconds"),
        "machine": machine(),
        "load": {"before": load_before, "after": uptime()},
        "trackstack": {
            **git_revision(),
            "env_file": str(env_file),
            "project": PROJECT,
            "mlflow_image": ts.settings.mlflow_image,
            "mlflow_workers": ts.settings.mlflow_workers,
        },
        "repeat": args.repeat,
        "batches_per_client": args.batches,
        "pairs": args.pairs,
        "other_stack_during_a_batch": "paused" if args.pause else "idle",
        "idle_window_s": args.idle_seconds,
        "notes": NOTES,
        "rows": summaries,
        "invoke_up_phases": phases,
        **bench.log,
    }
    host = report["machine"]
    print(f"\ntrackstack vs the course's stack, {report['date']} on {host['hostname']} ({host['cores']} cores, "
          f"{host['cpu']}); load before: {load_before}")  # fmt: skip
    print(render_table(summaries))
    for state, phase in phases.items():
        print(f"  invoke up, {state}: stack healthy after {phase['stack_healthy']:.1f}s, "
              f"then seeding {phase['seeding']:.1f}s (medians)")  # fmt: skip
    for note in NOTES:
        print(f"  * {note}")
    output = args.output or RESULTS / f"{stamp.strftime('%Y%m%dT%H%M%SZ')}.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8", newline="\n")
    say(f"saved {output.relative_to(ROOT) if output.is_relative_to(ROOT) else output}")
    return 1 if bench.log["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
