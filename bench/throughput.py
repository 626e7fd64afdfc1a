"""Tracking throughput: metrics per second that N client processes log through a tracking server."""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.synchronize import Event
from typing import Any

from bench import BenchError

METRICS_PER_BATCH = 1000  # MLflow's limit for one log_batch call


def _client(url: str, experiment_id: str, batches: int, go: Event, out: Any) -> None:
    """One tracking client: a run of its own, one warm-up batch, then `batches` timed batches."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)
    run_id = client.create_run(experiment_id).info.run_id
    now = int(time.time() * 1000)

    def batch(index: int) -> list[Metric]:
        return [Metric(f"m{j % 10}", float(j), now + index, index * 100 + j // 10) for j in range(METRICS_PER_BATCH)]

    client.log_batch(run_id, metrics=batch(0))
    prepared = [batch(i + 1) for i in range(batches)]
    out.put(("ready", 0.0, 0.0))
    go.wait()
    started = time.monotonic()
    for metrics in prepared:
        client.log_batch(run_id, metrics=metrics)
    out.put(("done", started, time.monotonic()))


def throughput(url: str, clients: int, batches: int) -> float:
    """Metrics per second that `clients` processes log together, from the first start to the last end."""
    from mlflow.tracking import MlflowClient

    experiment_id = MlflowClient(tracking_uri=url).create_experiment(f"bench-{time.time_ns()}")
    context = multiprocessing.get_context("spawn")
    go = context.Event()
    out = context.Queue()
    workers = [context.Process(target=_client, args=(url, experiment_id, batches, go, out)) for _ in range(clients)]
    for worker in workers:
        worker.start()
    try:
        for _ in range(clients):
            kind, _, _ = out.get(timeout=120)
            if kind != "ready":
                raise BenchError("a throughput client failed to start")
        go.set()
        spans: list[tuple[float, float]] = [out.get(timeout=600)[1:] for _ in range(clients)]
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    if any(worker.exitcode for worker in workers):
        raise BenchError("a throughput client exited with an error")
    elapsed = max(end for _, end in spans) - min(start for start, _ in spans)
    return clients * batches * METRICS_PER_BATCH / elapsed
