"""Schedules in `.env`: a 5-field cron expression (minute hour day-of-month month day-of-week), read with
croniter. One place for the schedule math: validating an expression and the next time it fires.

The containers that run a job on a schedule (templates/mlflow/on_schedule.py) use croniter the same way.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from croniter import croniter

FIELDS = 5
# A duration as `mlflow gc --older-than` takes it: days, hours, minutes, seconds, e.g. 7d or 1d12h.
_DURATION = re.compile(r"^(?:(?P<d>\d+)d)?(?:(?P<h>\d+)h)?(?:(?P<m>\d+)m)?(?:(?P<s>\d+)s)?$")


def cron_problem(expression: str) -> str | None:
    """Why `expression` is not a 5-field cron expression, or None when it is."""
    fields = expression.split()
    if len(fields) != FIELDS:
        return f"has {len(fields)} field(s); a schedule has 5: minute hour day-of-month month day-of-week"
    if not croniter.is_valid(" ".join(fields)):
        return "is not a cron expression croniter reads"
    return None


def next_after(expression: str, moment: datetime) -> datetime:
    """The first time after `moment` that `expression` fires, in `moment`'s time zone."""
    problem = cron_problem(expression)
    if problem:
        raise ValueError(f"{expression!r} {problem}")
    found: datetime = croniter(expression, moment).get_next(datetime)
    return found


def duration(text: str) -> timedelta | None:
    """A duration like 7d, 12h or 1d12h30m (what `mlflow gc --older-than` takes); None if it is not one."""
    match = _DURATION.fullmatch(text)
    if not text or not match:
        return None
    units = {key: int(value or 0) for key, value in match.groupdict().items()}
    return timedelta(days=units["d"], hours=units["h"], minutes=units["m"], seconds=units["s"])
