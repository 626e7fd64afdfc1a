"""A class-sized data set, logged through MLflow by parallel client processes (bench/class_backup.py).

A plan says what a class leaves behind: `students` students (an experiment each), each with `runs`
runs of `steps` steps of `metrics` metrics, `params` parameters and one artifact of
`artifact_bytes` random (incompressible) bytes. Logged with `log_batch` (at most 1000 entries a
call, MLflow's limit) and `log_artifact`, by `MlflowClient`s at their defaults; each client process
takes one student at a time. A plan grows by students, so a smaller plan's data is the start of a
larger one's: the bench logs the small set, measures, then logs the rest.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import random
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

BATCH_LIMIT = 1000  # entries (metrics + params + tags) of one log_batch call
EXPERIMENT_PREFIX = "bench-class-student-"


@dataclass(frozen=True)
class Plan:
    students: int = 40
    runs: int = 20  # per student
    steps: int = 200  # per run
    metrics: int = 5  # metric names logged at every step
    params: int = 5  # per run
    artifact_bytes: int = 1_000_000  # one artifact per run

    @property
    def run_count(self) -> int:
        return self.students * self.runs

    @property
    def metric_points(self) -> int:
        return self.run_count * self.steps * self.metrics

    @property
    def artifact_total(self) -> int:
        return self.run_count * self.artifact_bytes

    def scaled(self, share: float) -> Plan:
        """The plan for `share` of the class (at least one student): the same runs per student."""
        return replace(self, students=max(1, round(self.students * share)))

    def text(self) -> str:
        return (f"{self.students} students x {self.runs} runs x {self.steps} steps x {self.metrics} metrics, "
                f"{self.artifact_bytes / 1e6:g} MB artifact per run: {self.run_count} runs, "
                f"{self.metric_points:,} metric points, {self.artifact_total / 1e6:,.0f} MB of artifacts")  # fmt: skip


def experiment_name(student: int) -> str:
    return f"{EXPERIMENT_PREFIX}{student:03d}"


def grown(plans: Sequence[Plan]) -> list[tuple[Plan, range]]:
    """The plans smallest first, each with the students to log on top of the previous one's."""
    ordered = sorted(plans, key=lambda plan: plan.students)
    shapes = {replace(plan, students=0) for plan in ordered}
    if len(shapes) > 1:
        raise ValueError("plans that grow into each other differ only in their number of students")
    done = 0
    steps = []
    for plan in ordered:
        steps.append((plan, range(done, plan.students)))
        done = plan.students
    return steps


MetricPoint = tuple[str, float, int]  # key, value, step


def run_batches(plan: Plan, seed: int) -> list[tuple[list[MetricPoint], list[tuple[str, str]]]]:
    """One run's log_batch calls: (metrics, params), params in the first, at most BATCH_LIMIT entries each.

    The values are a seeded training curve (loss falling, accuracy rising, with noise), so that a run
    looks like one and the same seed logs the same run."""
    rng = random.Random(seed)  # noqa: S311 - made-up training curves, not secrets
    params = [(f"param_{i}", str(rng.choice([0.1, 0.01, 0.001, 32, 64, 128]))) for i in range(plan.params)]
    points: list[MetricPoint] = []
    for step in range(plan.steps):
        progress = 1 - math.exp(-step / max(1, plan.steps / 4))
        for i in range(plan.metrics):
            value = (1 - progress if i % 2 == 0 else progress) + rng.gauss(0, 0.02)
            points.append((f"metric_{i}", value, step))
    batches: list[tuple[list[MetricPoint], list[tuple[str, str]]]] = []
    first_room = BATCH_LIMIT - len(params)
    batches.append((points[:first_room], params))
    for start in range(first_room, len(points), BATCH_LIMIT):
        batches.append((points[start : start + BATCH_LIMIT], []))
    return batches


def log_student(url: str, plan: Plan, student: int) -> int:
    """Log one student's experiment and runs into the MLflow at `url`; the runs logged."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)
    name = experiment_name(student)
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(name)
    with tempfile.TemporaryDirectory(prefix="bench-class-") as folder:
        artifact = Path(folder) / "model.bin"
        for index in range(plan.runs):
            run_id = client.create_run(experiment_id, run_name=f"run-{index:02d}").info.run_id
            now = int(time.time() * 1000)
            for points, params in run_batches(plan, seed=student * 1000 + index):
                metrics = [Metric(key, value, now + step, step) for key, value, step in points]
                client.log_batch(run_id, metrics=metrics, params=[Param(key, value) for key, value in params])
            artifact.write_bytes(os.urandom(plan.artifact_bytes))
            client.log_artifact(run_id, str(artifact))
            client.set_terminated(run_id)
    return plan.runs


def log_students(url: str, plan: Plan, students: range, clients: int) -> float:
    """Log `students` of `plan` with `clients` processes (spawned: they read MLFLOW_* from the environment
    as it is now); the seconds it took."""
    started = time.monotonic()
    if students:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(clients, len(students)), mp_context=context) as pool:
            for future in [pool.submit(log_student, url, plan, student) for student in students]:
                future.result()  # the first failure fails the bench
    return time.monotonic() - started


def count_runs(url: str, plan: Plan) -> tuple[int, int]:
    """The runs in the plan's experiments, and the steps of one metric of the first run (spot check)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=url)
    runs = 0
    first = ""
    for student in range(plan.students):
        experiment = client.get_experiment_by_name(experiment_name(student))
        if experiment is None:
            continue
        token = None
        while True:
            page = client.search_runs([experiment.experiment_id], max_results=1000, page_token=token)
            runs += len(page)
            first = first or (page[0].info.run_id if page else "")
            token = page.token
            if not token:
                break
    steps = len(client.get_metric_history(first, "metric_0")) if first else 0
    return runs, steps
