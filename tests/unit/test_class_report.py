"""`invoke report`'s pure parts: where a run's artifacts are in the bucket, and the sums per student."""

from __future__ import annotations

import json

from trackstack.class_report import (
    LOGINS_SQL,
    RUNS_SQL,
    bucket_prefix,
    build,
    bytes_by_prefix,
    human_bytes,
    table_rows,
    to_csv,
)

# 2026-12-07 10:00 and 10:05 UTC, in ms.
T0, T1 = 1796637600000, 1796637900000


def test_a_runs_artifact_location_maps_to_its_folder_in_the_bucket() -> None:
    assert bucket_prefix("mlflow-artifacts:/1/abc/artifacts", "mlflow") == "1/abc/artifacts/"
    assert bucket_prefix("mlflow-artifacts://mlflow:5000/1/abc/artifacts", "mlflow") == "1/abc/artifacts/"
    assert bucket_prefix("s3://mlflow/7/def/artifacts/", "mlflow") == "7/def/artifacts/"
    assert bucket_prefix("s3://other-bucket/7/def/artifacts", "mlflow") is None
    assert bucket_prefix("file:///mlruns/1/abc/artifacts", "mlflow") is None
    assert bucket_prefix("", "mlflow") is None


def test_an_object_counts_for_its_runs_folder_only() -> None:
    sizes = {"1/abc/artifacts/model.pkl": 100, "1/abc/artifacts/plots/a.png": 20, "1/abcd/artifacts/x": 7}
    assert bytes_by_prefix(sizes, {"1/abc/artifacts/", "2/zzz/artifacts/"}) == {
        "1/abc/artifacts/": 120,  # 1/abcd/ shares the prefix as text, not as a folder
        "2/zzz/artifacts/": 0,
    }


def test_the_report_sums_runs_activity_and_bytes_per_login() -> None:
    runs = json.dumps([
        ["ada", "active", "mlflow-artifacts:/1/r1/artifacts", T0],
        ["ada", "deleted", "mlflow-artifacts:/1/r2/artifacts", T1],
        ["bob", "active", "mlflow-artifacts:/2/r3/artifacts", None],
        [None, "active", "", T0],
    ])  # fmt: skip
    logins = json.dumps({"users": ["ada", "admin", "bob", "cyd"], "experiments": {"ada": 2, "admin": 1}})
    sizes = {"1/r1/artifacts/a": 1000, "1/r2/artifacts/b": 24, "2/r3/artifacts/c": 5, "9/orphan/artifacts/d": 99}
    students = {s.name: s for s in build(runs, logins, sizes, bucket="mlflow")}
    ada, bob, cyd = students["ada"], students["bob"], students["cyd"]
    assert (ada.runs, ada.deleted_runs, ada.experiments, ada.artifact_bytes) == (1, 1, 2, 1024)
    assert ada.last_activity == "2026-12-07 10:05"  # the newest of its runs, the deleted one included
    assert (bob.runs, bob.experiments, bob.artifact_bytes, bob.last_activity) == (1, 0, 5, "")
    # A login that has done nothing yet is listed: the instructor sees who has not started.
    assert (cyd.runs, cyd.experiments, cyd.last_activity_ms) == (0, 0, None)
    assert students["(no user)"].experiments is None
    assert list(students) == sorted(students)


def test_without_logins_experiments_are_unknown_and_said_so() -> None:
    students = build(json.dumps([["alice", "active", "", T0]]), None, {}, bucket="mlflow")
    rows = table_rows(students)
    assert rows[0][0] == "student"
    assert rows[1] == ("alice", "1", "0", "-", "2026-12-07 10:00", "0 B")
    assert to_csv(students).splitlines()[1] == "alice,1,0,,2026-12-07 10:00,0"


def test_sizes_read_as_people_read_them() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1536, 5 * 1024**3)] == ["0 B", "1023 B", "1.5 KiB", "5.0 GiB"]


def test_the_queries_read_what_mlflow_and_its_logins_database_have() -> None:
    for table in ("runs", "latest_metrics", "artifact_uri", "lifecycle_stage", "user_id"):
        assert table in RUNS_SQL
    assert "experiment_permissions" in LOGINS_SQL
    assert "'MANAGE'" in LOGINS_SQL
