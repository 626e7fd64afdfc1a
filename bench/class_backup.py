"""Backup and restore of a class-sized data set: time and size, and how they grow (issue 26).

    python bench/class_backup.py [--students 40] [--runs 20] [--steps 200] [--sizes 0.5,1] [--clients 4]
    python bench/class_backup.py --env-file PATH [--tracking-uri URL] [--ca-file CRT]   (a deployed stack)

Compose (the default): a scratch stack of the bench's own (project `tsbenchbackup`, the course's
ports plus 12000, a copy of the tree: bench/scratch.py; the user's stack and files are not
touched), taken down with its volumes at the end. For each size, smallest first (`--sizes`: shares
of the class, 0.5 and 1 by default), the students missing from the stack are logged
(bench/dataset.py: parallel client processes, `log_batch`, a random artifact per run), then
`invoke backup --into DIR` is timed and DIR's size summed, then `invoke reset --yes` empties the
stack (not timed) and `invoke restore DIR --yes` is timed: a restore into an empty stack, as after
losing a machine. The restored runs are counted against the plan.

`--env-file PATH`: the stack that `.env` names instead (a swarm or Kubernetes test bed), left
running; its tasks run from this checkout on it. The data set is added to it and stays. A deployed
stack has no `invoke reset`: its restore runs over the stack's own data, where objects already
there with the same bytes are not uploaded again, so its restore row is not the same measure (the
table says which). MLflow's URL is the one `invoke user.*` uses, or `--tracking-uri`; with logins
the clients log in as the admin. Prints a table and writes bench/results/backup-<time>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

if not __package__:  # run as `python bench/class_backup.py`: the bench package lives in the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import ROOT, BenchError, say
from bench.dataset import Plan, count_runs, grown, log_students
from bench.report import fmt, git_revision, machine, save_report, uptime
from bench.scratch import ScratchStack, run_invoke
from trackstack.console import table

PROJECT = "tsbenchbackup"
PORT_OFFSET = 12000  # 17001, 17051, 21000, 21001, 17432: apart from tsbench's and tsbenchstores'
INTO_EMPTY = "into an empty stack (`invoke reset --yes` first)"
OVER_OWN_DATA = "over the stack's own data (unchanged objects are not uploaded again)"


def parse_shares(text: str) -> list[float]:
    shares = sorted({float(item) for item in text.split(",") if item.strip()})
    if not shares or any(not 0 < share <= 1 for share in shares):
        raise argparse.ArgumentTypeError("comma-separated shares of the class, each in (0, 1], e.g. 0.5,1")
    return shares


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = Plan()
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--students", type=int, default=defaults.students, help="the full class (default 40)")
    parser.add_argument("--runs", type=int, default=defaults.runs, help="runs per student (default 20)")
    parser.add_argument("--steps", type=int, default=defaults.steps, help="metric steps per run (default 200)")
    parser.add_argument("--metrics", type=int, default=defaults.metrics, help="metrics at each step (default 5)")
    parser.add_argument("--artifact-mb", type=float, default=defaults.artifact_bytes / 1e6,
                        help="one artifact per run, in MB (default 1)")  # fmt: skip
    parser.add_argument("--sizes", type=parse_shares, default=[0.5, 1.0],
                        help="shares of the class to measure, smallest first (default 0.5,1)")  # fmt: skip
    parser.add_argument("--clients", type=int, default=4, help="client processes logging the data (default 4)")
    env_help = "measure the stack this .env names (a deployed test bed) instead of a scratch one"
    parser.add_argument("--env-file", type=Path, default=None, help=env_help)
    parser.add_argument("--tracking-uri", default="", help="MLflow's URL for the clients (with --env-file)")
    parser.add_argument("--ca-file", default="", help="the CA certificate of that URL (with --env-file)")
    output_help = "JSON file (default bench/results/backup-<time>.json)"
    parser.add_argument("--output", type=Path, default=None, help=output_help)
    args = parser.parse_args(argv)
    if (args.tracking_uri or args.ca_file) and not args.env_file:
        parser.error("--tracking-uri and --ca-file go with --env-file (the scratch stack's URL is its own)")
    return args


def plans(args: argparse.Namespace) -> list[Plan]:
    full = Plan(students=args.students, runs=args.runs, steps=args.steps, metrics=args.metrics,
                artifact_bytes=round(args.artifact_mb * 1e6))  # fmt: skip
    return sorted({full.scaled(share) for share in args.sizes}, key=lambda plan: plan.students)


def folder_bytes(folder: Path) -> int:
    """The apparent size of every file under `folder`."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def render(results: Sequence[Mapping[str, Any]]) -> str:
    """A column per data set (smallest first) and, with two or more, the largest's ratio to the smallest."""
    header = ("row", *(f"{r['plan']['students']} students" for r in results))
    growth = len(results) > 1
    if growth:
        header += (f"{results[-1]['plan']['students']} / {results[0]['plan']['students']}",)
    lines: list[tuple[str, ...]] = [header]
    for key, label in (("data_mb", "data set: artifacts (MB)"), ("metric_points", "data set: metric points"),
                       ("backup_s", "invoke backup (s)"), ("backup_mb", "backup folder (MB)"),
                       ("restore_s", "invoke restore --yes (s)")):  # fmt: skip
        values = [float(r[key]) for r in results]
        ratio = (f"{fmt(values[-1] / values[0])}x" if values[0] else "-",) if growth else ()
        lines.append((label, *(fmt(value) for value in values), *ratio))
    return table(lines)


@contextmanager
def client_environment(values: Mapping[str, str]) -> Iterator[None]:
    """MLFLOW_* variables for the client processes (spawned: they read the environment when they start)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def deployed(args: argparse.Namespace) -> tuple[str, dict[str, str], Path]:
    """A deployed stack's MLflow URL and its clients' MLFLOW_* variables, from its .env (or the flags)."""
    from trackstack import targets
    from trackstack.project import Project
    from trackstack.validation import RELAXED, load_settings

    path = args.env_file.resolve()
    settings = load_settings(path, RELAXED)
    values: dict[str, str] = {}
    if settings.mlflow_auth:
        values["MLFLOW_TRACKING_USERNAME"] = settings.mlflow_admin_user
        values["MLFLOW_TRACKING_PASSWORD"] = settings.mlflow_admin_password.get_secret_value()
    url, verify = args.tracking_uri, args.ca_file
    if not url:
        with targets.for_project(Project(root=ROOT, env_file=path, settings=settings)).mlflow_server() as server:
            if server.host:
                raise BenchError(
                    "MLflow answers the tasks' address only with another Host header (a port-forward): "
                    "pass --tracking-uri, an address it answers (e.g. the Ingress), and --ca-file"
                )
            url = server.url
            verify = server.verify if isinstance(server.verify, str) else ""
    if verify:
        values["MLFLOW_TRACKING_SERVER_CERT_PATH"] = str(Path(verify).resolve())
    return url, values, path


def measure(
    url: str, steps: list[tuple[Plan, range]], invoke: Callable[[list[str]], float], empty_first: bool,
    workdir: Path, clients: int,
) -> list[dict[str, Any]]:  # fmt: skip
    """For each plan: log its new students, time a backup and a restore of it, count the restored runs."""
    results = []
    for plan, students in steps:
        say(f"data set: {plan.text()}; logging students {students.start + 1}-{students.stop}")
        logged = log_students(url, plan, students, clients)
        into = workdir / f"backups-{plan.students}"
        into.mkdir()
        backup_s = invoke(["backup", "--into", str(into)])
        (folder,) = [path for path in into.iterdir() if path.is_dir()]
        size = folder_bytes(folder)
        if empty_first:
            invoke(["reset", "--yes"])
        restore_s = invoke(["restore", str(folder), "--yes"])
        runs, steps_found = count_runs(url, plan)
        if runs < plan.run_count or steps_found != plan.steps:
            raise BenchError(f"after the restore: {runs} runs (expected {plan.run_count}) and {steps_found} steps "
                             f"in the first run's history (expected {plan.steps})")  # fmt: skip
        say(f"{plan.students} students: backup {backup_s:.1f}s, {size / 1e6:,.0f} MB; restore {restore_s:.1f}s")
        results.append({"plan": asdict(plan), "runs": runs, "logging_s": round(logged, 1),
                        "data_mb": plan.artifact_total / 1e6, "metric_points": plan.metric_points,
                        "backup_s": round(backup_s, 2), "backup_mb": round(size / 1e6, 1),
                        "restore_s": round(restore_s, 2)})  # fmt: skip
        shutil.rmtree(into)  # the disk: a full-size backup is about as large as the data set
    return results


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = dt.datetime.now(dt.UTC)
    steps = grown(plans(args))
    load_before = uptime()
    say(f"load before: {load_before}")
    if args.env_file:
        url, values, env_file = deployed(args)
        target = env_file.name
        with client_environment(values), tempfile.TemporaryDirectory(prefix="tsbenchbackup-") as workdir:
            results = measure(url, steps, lambda task: run_invoke(task, env_file, ROOT), False, Path(workdir),
                              args.clients)  # fmt: skip
    else:
        with ScratchStack(PROJECT, PORT_OFFSET) as stack:
            stack.invoke(["up"])
            target = f"compose ({PROJECT})"
            results = measure(stack.project().settings.mlflow_url, steps, stack.invoke, True, stack.workdir,
                              args.clients)  # fmt: skip
    restore_mode = OVER_OWN_DATA if args.env_file else INTO_EMPTY
    report: dict[str, Any] = {
        "date": stamp.isoformat(timespec="seconds"),
        "machine": machine(),
        "load": {"before": load_before, "after": uptime()},
        "trackstack": git_revision(),
        "target": target,
        "restore": restore_mode,
        "clients": args.clients,
        "results": results,
    }
    host = report["machine"]
    print(f"\nbackup and restore on {target}, {report['date']} on {host['hostname']} ({host['cores']} cores); "
          f"load before: {load_before}; restore {restore_mode}")  # fmt: skip
    print(render(results))
    save_report(report, "backup", stamp, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
