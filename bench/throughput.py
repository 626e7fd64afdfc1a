"""Tracking throughput: metrics per second that N client processes log through a tracking server.

The client processes start once (importing MLflow takes seconds of CPU) and then measure as
often as asked, against either stack: each measurement gives every client a run of its own,
one untimed warm-up batch, then `batches` timed log_batch calls, all clients released together.
"""

from __future__ import annotations

import multiprocessing
import threading
import time
import traceback
from types import TracebackType
from typing import Any

from bench import BenchError

METRICS_PER_BATCH = 1000  # MLflow's limit for one log_batch call
TIMEOUT = 600.0  # seconds one measurement may take


def _client(jobs: Any, out: Any, start: Any) -> None:
    """One tracking client: for each job (url, experiment, batches), log them in a run of its own."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    clients: dict[str, MlflowClient] = {}
    while (job := jobs.get()) is not None:
        url, experiment_id, batches = job
        try:
            client = clients.setdefault(url, MlflowClient(tracking_uri=url))
            run_id = client.create_run(experiment_id).info.run_id
            now = int(time.time() * 1000)

            def batch(index: int, now: int = now) -> list[Metric]:
                return [
                    Metric(f"m{j % 10}", float(j), now + index, index * 100 + j // 10) for j in range(METRICS_PER_BATCH)
                ]

            client.log_batch(run_id, metrics=batch(0))
            prepared = [batch(i + 1) for i in range(batches)]
        except Exception:  # reported to the parent, which fails the measurement
            out.put(("error", traceback.format_exc(), 0.0))
            start.abort()
            continue
        try:
            start.wait()
        except threading.BrokenBarrierError:  # another client failed: the parent gives this job up
            continue
        began = time.monotonic()
        for metrics in prepared:
            client.log_batch(run_id, metrics=metrics)
        out.put(("done", began, time.monotonic()))


class Clients:
    """`count` tracking client processes, started once, that log batches together on request."""

    def __init__(self, count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.count = count
        self._start = context.Barrier(count + 1)
        self._out = context.Queue()
        self._jobs = [context.Queue() for _ in range(count)]
        self._workers = [context.Process(target=_client, args=(jobs, self._out, self._start)) for jobs in self._jobs]
        for worker in self._workers:
            worker.start()

    def experiment(self, url: str) -> str:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=url).create_experiment(f"bench-{self.count}-{time.time_ns()}")

    def measure(self, url: str, experiment_id: str, batches: int) -> float:
        """Metrics per second that the clients log together, from the first start to the last end."""
        for jobs in self._jobs:
            jobs.put((url, experiment_id, batches))
        try:
            self._start.wait(timeout=120)
        except threading.BrokenBarrierError as error:  # a client failed to prepare
            self._start.reset()
            raise BenchError(f"a throughput client failed to start: {self._errors()}") from error
        spans: list[tuple[float, float]] = []
        for _ in range(self.count):
            kind, began, ended = self._out.get(timeout=TIMEOUT)
            if kind != "done":
                raise BenchError(f"a throughput client failed: {began}")
            spans.append((began, ended))
        elapsed = max(end for _, end in spans) - min(start for start, _ in spans)
        return self.count * batches * METRICS_PER_BATCH / elapsed

    def _errors(self) -> str:
        found = []
        while not self._out.empty():
            kind, text, _ = self._out.get_nowait()
            if kind == "error":
                found.append(str(text).strip().splitlines()[-1])
        return "; ".join(found) or "no message"

    def close(self) -> None:
        for jobs in self._jobs:
            jobs.put(None)
        for worker in self._workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()

    def __enter__(self) -> Clients:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
