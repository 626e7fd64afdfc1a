"""Schedules in .env: 5-field cron expressions and gc's durations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from trackstack.schedule import cron_problem, duration, next_after


def test_a_schedule_has_five_fields_croniter_reads() -> None:
    assert cron_problem("0 3 * * *") is None
    assert cron_problem("*/15 8-18 * * 1-5") is None
    assert "has 6 field(s)" in str(cron_problem("0 0 3 * * *"))
    assert "has 1 field(s)" in str(cron_problem("@daily"))
    assert "not a cron expression" in str(cron_problem("61 3 * * *"))


def test_the_next_time_is_strictly_after_the_moment() -> None:
    at_three = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    assert next_after("0 3 * * *", at_three) == at_three + timedelta(days=1)
    assert next_after("0 3 * * *", at_three - timedelta(minutes=1)) == at_three
    with pytest.raises(ValueError, match="field"):
        next_after("0 3 * *", at_three)


def test_durations_read_as_mlflow_gc_reads_them() -> None:
    assert duration("7d") == timedelta(days=7)
    assert duration("1d12h30m") == timedelta(days=1, hours=12, minutes=30)
    assert [duration(text) for text in ("", "7", "d", "7 days", "-1d")] == [None] * 5
