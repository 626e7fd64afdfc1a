"""The class-capacity benchmark's pure parts: a student's schedule of calls and the percentiles."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from bench.class_capacity import Calls, percentile, read_logins, schedule


def test_three_minutes_of_a_training_loop() -> None:
    actions = schedule(180.0)
    calls = Counter(action.call for action in actions)
    # Before the end: a batch each second (0..179 s), an artifact each 30 s after the start, runs at 0 and 120 s.
    assert calls == {"log_batch": 180, "log_artifact": 5, "create_run": 2, "end_run": 2}
    assert actions[0].call == "create_run"
    assert actions[-1].call == "end_run"
    assert [a.call for a in actions if a.at == 120.0][:2] == ["end_run", "create_run"]  # a run ends before the next
    assert [a.at for a in actions] == sorted(a.at for a in actions)


def test_students_are_staggered_within_a_second() -> None:
    first, other = schedule(10.0), schedule(10.0, offset=0.5)
    assert [a.at + 0.5 for a in first] == [a.at for a in other]


def test_percentiles_interpolate_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50.5
    assert math.isclose(percentile(values, 99), 99.01)
    assert percentile([0.2], 95) == 0.2
    assert math.isnan(percentile([], 50))


def test_failed_calls_are_counted_apart_from_the_latencies() -> None:
    calls = Calls()
    calls.record("log_batch", 0.010, None)
    calls.record("log_batch", 0.030, None)
    calls.record("log_batch", 5.0, ConnectionError("reset by peer"))
    summary = calls.summary()["log_batch"]
    assert (summary["count"], summary["failed"], summary["p50_ms"]) == (2, 1, 20.0)
    assert calls.errors == ["log_batch: ConnectionError: reset by peer"]


def test_logins_come_from_the_password_file(tmp_path: Path) -> None:
    out = tmp_path / "passwords.csv"
    out.write_text("username,email,section,password,tracking_uri\ns1,,,pw1,http://x\n", encoding="utf-8")
    assert read_logins(out) == [("s1", "pw1")]
