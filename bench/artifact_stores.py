"""Artifact stores side by side: MinIO and SeaweedFS behind the same MLflow, in one run (issue 28).

    python bench/artifact_stores.py [--stores minio,seaweedfs] [--repeat 3] [--settle 30]

Brings up a scratch Compose stack of its own (project `tsbenchstores`, the course's ports plus
11000: bench/scratch.py; the user's stack and files are not touched) with the first store, then
switches it the way .ci/run does (a copy of its env file with ARTIFACT_STORE=<the next>, then
`invoke up` on it). On each store: the store container's idle memory (`docker stats --no-stream`,
the median of three readings, after `--settle` seconds of a fresh start, and again after the
transfers), then `--repeat` rounds of: upload of 100 x 1 MB artifacts (`log_artifacts` of a
folder) and of one 200 MB artifact (`log_artifact`), and their downloads (`download_artifacts`),
each call timed, through MLflow with `MlflowClient` at its defaults (the client sends one PUT per
file; MLflow's server writes it to the store with boto3's `upload_file`, multipart above 8 MB).
Every download is checked byte for byte against what was uploaded. Prints one table, the stores
side by side, writes bench/results/stores-<time>.json, and takes the stack down with its volumes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import shutil
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

if not __package__:  # run as `python bench/artifact_stores.py`: the bench package lives in the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import BenchError, say
from bench.report import cell, fmt, git_revision, machine, save_report, stats, uptime
from bench.scratch import ScratchStack, container_memory
from trackstack.console import table
from trackstack.services import STORES

PROJECT = "tsbenchstores"
PORT_OFFSET = 11000  # 16001, 16051, 20000, 20001, 16432: apart from tsbench's (+0 and +20000)
MB = 1_000_000
STORE_SERVICE = "minio"  # every store's service name (trackstack.services.STORES)


def rows(small_count: int, small_mb: int, large_mb: int) -> dict[str, str]:
    """The table's rows by key, in order: what each measures and its unit."""
    small = f"{small_count} x {small_mb} MB"
    return {
        "memory_fresh": "store's idle memory, fresh (MiB)",
        "upload_small": f"upload {small} (s)",
        "download_small": f"download {small} (s)",
        "upload_large": f"upload 1 x {large_mb} MB (s)",
        "download_large": f"download 1 x {large_mb} MB (s)",
        "memory_after": "store's idle memory, after the transfers (MiB)",
    }


def render(labels: Mapping[str, str], summaries: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """One line per row, a column per store (median [min-max]); with two stores, the second's ratio to the first."""
    stores = list(summaries)
    header = ("row", *stores, *([f"{stores[1]} / {stores[0]}"] if len(stores) == 2 else []))
    lines: list[tuple[str, ...]] = [header]
    for key, label in labels.items():
        found = [summaries[store].get(key) for store in stores]
        ratio = [ratio_cell(found[0], found[1])] if len(stores) == 2 else []
        lines.append((label, *(cell(summary) for summary in found), *ratio))
    return table(lines)


def ratio_cell(first: Mapping[str, Any] | None, second: Mapping[str, Any] | None) -> str:
    """The ratio of two medians, `1.23x`, or `-` when either is missing (or the first is zero)."""
    if not first or not second or not first.get("median") or "median" not in second:
        return "-"
    return f"{fmt(second['median'] / first['median'])}x"


def parse_stores(text: str) -> list[str]:
    stores = [store.strip() for store in text.split(",") if store.strip()]
    unknown = [store for store in stores if store not in STORES]
    if unknown or not stores or len(set(stores)) != len(stores):
        raise argparse.ArgumentTypeError(f"a comma-separated list of distinct stores of {', '.join(STORES)}")
    return stores


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--stores", type=parse_stores, default=list(STORES), help="stores in the order measured "
                        f"(default {','.join(STORES)})")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the four transfers on each store (default 3)")
    parser.add_argument("--small-count", type=int, default=100, help="small artifacts in a folder (default 100)")
    parser.add_argument("--small-mb", type=int, default=1, help="size of each small artifact in MB (default 1)")
    parser.add_argument("--large-mb", type=int, default=200, help="size of the large artifact in MB (default 200)")
    parser.add_argument("--settle", type=float, default=30.0, help="seconds idle before each memory reading "
                        "(default 30)")  # fmt: skip
    output_help = "JSON file (default bench/results/stores-<time>.json)"
    parser.add_argument("--output", type=Path, default=None, help=output_help)
    return parser.parse_args(argv)


def random_file(path: Path, size: int) -> None:
    """`size` random bytes (incompressible, as model weights are), written 1 MB at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as stream:
        for start in range(0, size, MB):
            stream.write(os.urandom(min(MB, size - start)))


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, by its path relative to it."""
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            with path.open("rb") as stream:
                found[str(path.relative_to(folder))] = hashlib.file_digest(stream, "sha256").hexdigest()
    return found


def timed(samples: dict[str, list[float]], key: str, call: Any, *args: Any) -> Any:
    started = time.monotonic()
    result = call(*args)
    samples.setdefault(key, []).append(time.monotonic() - started)
    return result


def transfers(url: str, files: Path, repeat: int, samples: dict[str, list[float]]) -> None:
    """`repeat` rounds of the four timed transfers against the MLflow at `url`, each download checked."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)
    experiment = client.create_experiment(f"bench-artifacts-{time.time_ns()}")
    small, large = files / "small", files / "large"
    expected = {"small": digests(small), "large": digests(large)}
    for index in range(repeat):
        run_id = client.create_run(experiment).info.run_id
        timed(samples, "upload_small", client.log_artifacts, run_id, str(small), "small")
        timed(samples, "upload_large", client.log_artifacts, run_id, str(large), "large")
        for name in ("small", "large"):
            target = files / "download"
            shutil.rmtree(target, ignore_errors=True)
            target.mkdir()
            path = Path(timed(samples, f"download_{name}", client.download_artifacts, run_id, name, str(target)))
            if digests(path) != expected[name]:
                raise BenchError(f"the {name} artifacts downloaded from run {run_id} differ from those uploaded")
        say(f"round {index + 1}/{repeat}: " + ", ".join(f"{key} {values[-1]:.2f}s" for key, values in samples.items()))
        client.set_terminated(run_id)


def measure_store(stack: ScratchStack, env_file: Path, files: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Start the stack on `env_file`'s store, read its idle memory, run the transfers, read it again."""
    started = stack.invoke(["up"], env_file)
    settings = stack.project(env_file).settings
    say(f"{settings.artifact_store} up in {started:.1f}s; idle {args.settle:.0f}s before reading its memory")
    container = stack.service_container(STORE_SERVICE, env_file)
    samples: dict[str, list[float]] = {}
    time.sleep(args.settle)
    samples["memory_fresh"] = [container_memory(container) / 2**20]
    transfers(settings.mlflow_url, files, args.repeat, samples)
    time.sleep(args.settle)
    samples["memory_after"] = [container_memory(container) / 2**20]
    return {"image": settings.image(settings.store), "invoke_up_s": round(started, 2), "samples": samples}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = dt.datetime.now(dt.UTC)
    labels = rows(args.small_count, args.small_mb, args.large_mb)
    load_before = uptime()
    say(f"load before: {load_before}")
    measured: dict[str, dict[str, Any]] = {}
    with ScratchStack(PROJECT, PORT_OFFSET, {"ARTIFACT_STORE": args.stores[0]}) as stack:
        files = stack.workdir / "files"
        for i in range(args.small_count):
            random_file(files / "small" / f"part-{i:03d}.bin", args.small_mb * MB)
        random_file(files / "large" / "model.bin", args.large_mb * MB)
        for store in args.stores:
            env_file = stack.env_file if store == args.stores[0] else stack.variant(ARTIFACT_STORE=store)
            measured[store] = measure_store(stack, env_file, files, args)
    summaries = {store: {key: stats(values) for key, values in found["samples"].items()}
                 for store, found in measured.items()}  # fmt: skip
    report: dict[str, Any] = {
        "date": stamp.isoformat(timespec="seconds"),
        "machine": machine(),
        "load": {"before": load_before, "after": uptime()},
        "trackstack": {**git_revision(), "project": PROJECT},
        "repeat": args.repeat,
        "settle_s": args.settle,
        "rows": labels,
        "stores": measured,
        "summary": summaries,
    }
    host = report["machine"]
    print(f"\nartifact stores through MLflow, {report['date']} on {host['hostname']} ({host['cores']} cores); "
          f"load before: {load_before}")  # fmt: skip
    print(render(labels, summaries))
    save_report(report, "stores", stamp, args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
