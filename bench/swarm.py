"""Throughput of a shared server on Docker Swarm: 4 clients against N MLflow replicas vs 1, in one run.

    python bench/swarm.py [--replicas 3] [--clients 4] [--pairs 3] [--batches 20] [--env-file PATH]

Needs a swarm manager in DOCKER_HOST (or the Docker context) and a `.env` that `invoke deploy`
accepts (TRACKSTACK_ENV_FILE or --env-file). The stack is deployed if it is not, then MLflow is
scaled to N replicas and to 1 in turn, in pairs (pairs alternate which goes first), and the same
`bench/throughput.py` clients log through the proxy. MLflow is scaled back to MLFLOW_REPLICAS
at the end. Prints both figures side by side, with the median of the per-pair ratios, and
writes bench/results/swarm-<time>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if not __package__:  # run as `python bench/swarm.py`: the bench package lives in the checkout, not the venv
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import ROOT, say
from bench.cpu import wait_for_quiet
from bench.paired import pair_order, paired_stats
from bench.report import cell, git_revision, machine, ratio_text, save_report, stats, uptime
from bench.throughput import Clients
from trackstack import engine
from trackstack.console import table
from trackstack.paths import env_file
from trackstack.project import Project
from trackstack.services import MLFLOW
from trackstack.targets.swarm import apply as deploy
from trackstack.targets.swarm import render as swarm
from trackstack.targets.swarm import state as swarmstate
from trackstack.validation import RELAXED, load_settings


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--replicas", type=int, default=3, help="MLflow replicas compared with 1 (default 3)")
    parser.add_argument("--clients", type=int, default=4, help="client processes, each with its own run (default 4)")
    parser.add_argument("--pairs", type=int, default=3, help="pairs of measurements, N replicas and 1 (default 3)")
    parser.add_argument("--batches", type=int, default=20, help="log_batch calls of 1000 metrics per client")
    parser.add_argument("--env-file", type=Path, default=None, help="the deployed .env (default: as the tasks)")
    busy = "before each timed step, wait up to 5 min for the CPU to be less busy than this (1: never)"
    parser.add_argument("--max-busy", type=float, default=0.35, help=busy)
    parser.add_argument("--output", type=Path, default=None, help="JSON file (default bench/results/swarm-<time>.json)")
    return parser.parse_args(argv)


def scale(project: Project, replicas: int) -> None:
    name = swarm.service_name(project.settings, MLFLOW.name)
    engine.run(["docker", "service", "scale", "--detach", f"{name}={replicas}"], capture=True)
    swarmstate.wait_converged(project.name, (name,), timeout=600)


def side_by_side(replicas: int, many: list[float], one: list[float], clients: int) -> str:
    """Both replica counts' medians [min-max] and the median of the per-pair ratios [quartiles]."""
    pairs = paired_stats(many, one)
    return table([("row", "unit", f"{replicas} replicas", "1 replica", "ratio (pairs)"),
                  (f"throughput, {clients} clients", "metrics/s", cell(stats(many)), cell(stats(one)),
                   ratio_text(pairs.get("median"), pairs))])  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = dt.datetime.now(dt.UTC)
    path = (args.env_file or env_file(ROOT)).resolve()
    settings = load_settings(path, RELAXED)
    project = Project(root=ROOT, env_file=path, settings=settings)
    # The clients are spawned processes: they read the login and the proxy's CA from the environment.
    os.environ["MLFLOW_TRACKING_USERNAME"] = settings.mlflow_admin_user
    os.environ["MLFLOW_TRACKING_PASSWORD"] = settings.mlflow_admin_password.get_secret_value()
    os.environ["MLFLOW_TRACKING_SERVER_CERT_PATH"] = str(ROOT / swarm.ca_file(settings))
    load_before = uptime()
    say(f"load before: {load_before}")
    if not swarmstate.services(project.name):
        say(f"deploying {project.name} (not timed)")
        deploy.deploy(project)
    url = swarm.mlflow_url(settings)
    counts = (args.replicas, 1)
    rates: tuple[list[float], list[float]] = ([], [])
    try:
        with Clients(args.clients) as clients:
            experiment = clients.experiment(url)
            for index in range(args.pairs):
                for side in pair_order(index):
                    say(f"pair {index + 1}/{args.pairs}: MLflow at {counts[side]} replica(s)")
                    scale(project, counts[side])
                    wait_for_quiet(args.max_busy)
                    rates[side].append(clients.measure(url, experiment, args.batches))
                    say(f"{counts[side]} replica(s): {rates[side][-1]:,.0f} metrics/s")
    finally:
        say(f"MLflow back to MLFLOW_REPLICAS={settings.mlflow_replicas}")
        scale(project, settings.mlflow_replicas)

    host = machine()
    nodes = len(engine.run(["docker", "node", "ls", "--quiet"], capture=True).stdout.split())
    report: dict[str, Any] = {
        "date": stamp.isoformat(timespec="seconds"),
        "machine": host,
        "swarm_nodes": nodes,
        "load": {"before": load_before, "after": uptime()},
        "trackstack": {
            **git_revision(),
            "project": project.name,
            "mlflow_version": settings.mlflow_version,
            "mlflow_workers_per_replica": settings.mlflow_workers,
        },
        "clients": args.clients,
        "batches_per_client": args.batches,
        "metrics_per_sample": args.clients * args.batches * 1000,
        "samples": {str(count): values for count, values in zip(counts, rates, strict=True)},
        "summary": {str(count): stats(values) for count, values in zip(counts, rates, strict=True)},
        "ratio_pairs": paired_stats(*rates),
    }
    print(f"\nMLflow on Docker Swarm ({nodes} nodes), {report['date']} on {host['hostname']} ({host['cores']} cores, "
          f"{host['cpu']}); {settings.mlflow_workers} worker(s) per replica; load before: {load_before}")  # fmt: skip
    print(side_by_side(args.replicas, *rates, args.clients))
    save_report(report, "swarm", stamp, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
