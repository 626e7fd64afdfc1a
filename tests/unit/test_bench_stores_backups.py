"""The optional benchmarks' pure parts: artifact stores (issue 28), class backup and restore (issue 26)."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench import BenchError
from bench import artifact_stores as stores
from bench import class_backup as backup
from bench.dataset import BATCH_LIMIT, Plan, grown, run_batches
from bench.paired import SIDE_BY_SIDE_OFFSET
from bench.scratch import memory_bytes, shifted_ports, with_values
from trackstack.services import ENDPOINTS


def test_with_values_replaces_keys_and_appends_missing_ones() -> None:
    text = "# comment\nCOMPOSE_PROJECT_NAME=trackstack\nMLFLOW_PORT=5001\nOTHER=x"
    out = with_values(text, {"COMPOSE_PROJECT_NAME": "tsbenchstores", "ARTIFACT_STORE": "seaweedfs"})
    assert out == "# comment\nCOMPOSE_PROJECT_NAME=tsbenchstores\nMLFLOW_PORT=5001\nOTHER=x\nARTIFACT_STORE=seaweedfs\n"


def test_scratch_stacks_ports_are_apart_from_each_other_and_the_bench() -> None:
    used = [
        {endpoint.course_port for endpoint in ENDPOINTS},  # tsbench, and the course's stack
        set(shifted_ports(SIDE_BY_SIDE_OFFSET).values()),  # tsbench side by side with it
        set(shifted_ports(stores.PORT_OFFSET).values()),
        set(shifted_ports(backup.PORT_OFFSET).values()),
    ]
    assert sum(len(ports) for ports in used) == len(set().union(*used))
    # Below Kubernetes' NodePort range (30000-32767), which a test bed's nodes may publish.
    assert max(shifted_ports(stores.PORT_OFFSET).values()) < 30000
    assert max(shifted_ports(backup.PORT_OFFSET).values()) < 30000
    assert set(shifted_ports(0)) == {endpoint.port_key for endpoint in ENDPOINTS}


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        ("45.3MiB / 23.47GiB", round(45.3 * 2**20)),
        ("1.5GiB / 2GiB", round(1.5 * 2**30)),
        ("512KiB / 1GiB", 512 * 1024),
        ("0B / 0B", 0),
        ("12.5MB / 1GB", 12_500_000),
    ],
)
def test_memory_bytes_reads_docker_stats(usage: str, expected: int) -> None:
    assert memory_bytes(usage) == expected


@pytest.mark.parametrize("usage", ["", "--", "--B / 1GiB", "12 parsecs / 1GiB"])
def test_memory_bytes_refuses_what_it_cannot_read(usage: str) -> None:
    with pytest.raises(BenchError, match="cannot read a memory size"):
        memory_bytes(usage)


def test_store_table_puts_the_stores_side_by_side_with_their_ratio() -> None:
    labels = stores.rows(100, 1, 200)
    summaries = {
        "minio": {"upload_small": {"median": 4.0, "min": 3.5, "max": 5.0, "n": 3}},
        "seaweedfs": {"upload_small": {"median": 6.0, "min": 5.5, "max": 7.0, "n": 3}},
    }
    lines = stores.render(labels, summaries).splitlines()
    assert lines[0].split() == ["row", "minio", "seaweedfs", "seaweedfs", "/", "minio"]
    upload = next(line for line in lines if line.startswith("upload 100 x 1 MB (s)"))
    assert upload.split()[-5:] == ["4.00", "[3.50-5.00]", "6.00", "[5.50-7.00]", "1.50x"]
    large = next(line for line in lines if line.startswith("upload 1 x 200 MB (s)"))
    assert large.split()[-3:] == ["-", "-", "-"]  # not measured: no figure, no ratio
    assert len(lines) == 1 + len(labels)


def test_store_table_of_one_store_has_no_ratio() -> None:
    summaries = {"seaweedfs": {"memory_fresh": {"median": 80.0, "min": 80.0, "max": 80.0, "n": 1}}}
    lines = stores.render(stores.rows(100, 1, 200), summaries).splitlines()
    assert lines[0].split() == ["row", "seaweedfs"]
    assert lines[1].split()[-1] == "80.0"


def test_store_flags() -> None:
    assert stores.parse_args([]).stores == ["minio", "seaweedfs"]
    assert stores.parse_args(["--stores", "seaweedfs,minio"]).stores == ["seaweedfs", "minio"]
    for bad in ("minio,minio", "ceph", ""):
        with pytest.raises(SystemExit):
            stores.parse_args(["--stores", bad])


def test_plan_sizes_and_scaling() -> None:
    plan = Plan()
    assert (plan.run_count, plan.metric_points, plan.artifact_total) == (800, 800_000, 800_000_000)
    assert plan.scaled(0.5) == Plan(students=20)
    assert plan.scaled(0.001).students == 1
    assert "40 students x 20 runs" in plan.text()
    assert "800 runs" in plan.text()


def test_plans_grow_by_students_smallest_first() -> None:
    steps = grown([Plan(), Plan(students=20)])
    assert [(plan.students, list(students)) for plan, students in steps] == [
        (20, list(range(20))),
        (40, list(range(20, 40))),
    ]
    with pytest.raises(ValueError, match="differ only in their number of students"):
        grown([Plan(), Plan(students=20, runs=10)])


def test_run_batches_log_every_point_within_mlflows_limit() -> None:
    plan = Plan(steps=450, metrics=5, params=5)
    batches = run_batches(plan, seed=7)
    assert all(len(metrics) + len(params) <= BATCH_LIMIT for metrics, params in batches)
    assert [len(params) for _, params in batches] == [5] + [0] * (len(batches) - 1)
    points = [point for metrics, _ in batches for point in metrics]
    assert len(points) == plan.steps * plan.metrics
    assert {(key, step) for key, _, step in points} == {
        (f"metric_{i}", step) for i in range(plan.metrics) for step in range(plan.steps)
    }
    assert run_batches(plan, seed=7) == batches  # the same seed logs the same run
    assert run_batches(plan, seed=8) != batches


def test_backup_table_shows_growth_from_the_smallest_set() -> None:
    def result(students: int, backup_s: float, size: float, restore_s: float) -> dict[str, object]:
        plan = Plan(students=students)
        return {"plan": {"students": students}, "data_mb": plan.artifact_total / 1e6,
                "metric_points": plan.metric_points, "backup_s": backup_s, "backup_mb": size,
                "restore_s": restore_s}  # fmt: skip

    lines = backup.render([result(20, 10.0, 420.0, 30.0), result(40, 25.0, 840.0, 45.0)]).splitlines()
    assert lines[0].split() == ["row", "20", "students", "40", "students", "40", "/", "20"]
    rows = {line.split("  ")[0]: line.split()[-3:] for line in lines[1:]}
    assert rows["invoke backup (s)"] == ["10.0", "25.0", "2.50x"]
    assert rows["backup folder (MB)"] == ["420.0", "840.0", "2.00x"]
    assert rows["data set: artifacts (MB)"] == ["400.0", "800.0", "2.00x"]
    single = backup.render([result(40, 25.0, 840.0, 45.0)]).splitlines()
    assert single[0].split() == ["row", "40", "students"]


def test_backup_flags_and_plans() -> None:
    args = backup.parse_args(["--students", "10", "--sizes", "1,0.5,0.5", "--artifact-mb", "0.5"])
    assert args.sizes == [0.5, 1.0]
    assert [(plan.students, plan.artifact_bytes) for plan in backup.plans(args)] == [(5, 500_000), (10, 500_000)]
    for bad in (["--sizes", "0"], ["--sizes", "1.5"], ["--tracking-uri", "https://x"]):
        with pytest.raises(SystemExit):
            backup.parse_args(bad)


def test_folder_bytes_sums_every_file(tmp_path: Path) -> None:
    (tmp_path / "artifacts" / "a").mkdir(parents=True)
    (tmp_path / "artifacts" / "a" / "x.bin").write_bytes(b"1" * 300)
    (tmp_path / "mlflow.dump").write_bytes(b"2" * 20)
    assert backup.folder_bytes(tmp_path) == 320


class FakeArtifactClient:
    """An MlflowClient's artifact calls, over a folder; `corrupt` flips a byte of what it hands back."""

    store: Path
    corrupt = False

    def __init__(self, tracking_uri: str) -> None:
        self.uri = tracking_uri

    def create_experiment(self, name: str) -> str:
        return "1"

    def create_run(self, experiment_id: str) -> Any:
        return SimpleNamespace(info=SimpleNamespace(run_id="r1"))

    def log_artifacts(self, run_id: str, local_dir: str, artifact_path: str) -> None:
        shutil.copytree(local_dir, self.store / artifact_path, dirs_exist_ok=True)

    def download_artifacts(self, run_id: str, path: str, dst_path: str) -> str:
        target = Path(dst_path) / path
        shutil.copytree(self.store / path, target)
        if self.corrupt:
            first = sorted(target.rglob("*.bin"))[0]
            first.write_bytes(b"x" + first.read_bytes()[1:])
        return str(target)

    def set_terminated(self, run_id: str) -> None:
        pass
