"""The schedules of `.env` (BACKUP_SCHEDULE, MLFLOW_GC_SCHEDULE): checking a cron expression, the next
time it fires, when backups are late; and MLFLOW_GC_OLDER_THAN's duration.

Times are UTC. The cron arithmetic is croniter's. This module imports only the standard library
and croniter: the backup image (templates/Dockerfile.backup.j2) runs it with Debian's python3, the
MLflow image (the scheduled gc, `gc_runner`) with the lock's croniter.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from croniter import croniter

# A duration as `mlflow gc --older-than` reads it (its own pattern, 3.8 to 3.18): days, hours, minutes,
# seconds in that order, each a number (a decimal point allowed), at least one of them: 7d, 12h, 1d12h, 0s.
_DURATION = re.compile(
    r"(?:(?P<d>\d+(?:\.\d+)?)d)?(?:(?P<h>\d+(?:\.\d+)?)h)?(?:(?P<m>\d+(?:\.\d+)?)m)?(?:(?P<s>\d+(?:\.\d+)?)s)?"
)
# How many schedule periods may pass without a new verified backup before `status` and `doctor` warn.
LATE_AFTER_PERIODS = 2


def problem(expression: str) -> str | None:
    """What is wrong with a cron expression, or None: five fields (minute hour day month weekday)."""
    fields = expression.split()
    if len(fields) != 5:
        return f"has {len(fields)} fields, not 5 (minute hour day-of-month month day-of-week), e.g. 0 3 * * *"
    if not croniter.is_valid(" ".join(fields)):
        return "not a valid cron expression, e.g. 0 3 * * * (every day at 03:00 UTC)"
    return None


def next_time(expression: str, after: datetime) -> datetime:
    """The first time after `after` (timezone-aware) that `expression` fires."""
    found: datetime = croniter(expression, after).get_next(datetime)
    return found


def previous_time(expression: str, before: datetime) -> datetime:
    """The last time at or before `before` that `expression` fired."""
    found: datetime = croniter(expression, before + timedelta(seconds=1)).get_prev(datetime)
    return found


def late(expression: str, newest: datetime | None, now: datetime) -> bool:
    """Whether the newest verified backup is older than two periods, or there is none (None).

    "Two periods" counts fire times, not a fixed length, so an irregular schedule (weekdays at 3,
    say) is judged fairly: late when the schedule fired twice since the newest backup was taken.
    No backup at all counts as late: trackstack cannot know since when the schedule has run, and
    the message says when the first one is due.
    """
    if newest is None:
        return True
    fired = newest
    for _ in range(LATE_AFTER_PERIODS):
        fired = next_time(expression, fired)
        if fired > now:
            return False
    return True


def duration(text: str) -> timedelta | None:
    """A duration such as 7d, 12h, 1d12h30m or 0s (what `mlflow gc --older-than` takes); None if it is not one."""
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        return None
    parts = {unit: float(value) for unit, value in match.groupdict().items() if value}
    return timedelta(days=parts.get("d", 0), hours=parts.get("h", 0), minutes=parts.get("m", 0),
                     seconds=parts.get("s", 0))  # fmt: skip


# A scheduled container's liveness: a thread touches its heartbeat file this often, and its
# healthcheck fails once the file is older than HEARTBEAT_STALE seconds.
HEARTBEAT_EVERY = 15
HEARTBEAT_STALE = 90


def heartbeat_file(job: str) -> Path:
    """Where a scheduled container of `job` ("backup", "gc") keeps its heartbeat: its own /tmp."""
    return Path(f"/tmp/trackstack-{job}.heartbeat")  # noqa: S108 - the container's own /tmp


def heartbeat_probe(job: str) -> list[str]:
    """The healthcheck of `job`'s container: the heartbeat's age, read by a Python that imports nothing
    (-I -S), so that the probe stays quick while a backup or gc keeps the machine busy."""
    path = str(heartbeat_file(job))
    script = f"import os,sys,time;sys.exit(time.time()-os.stat({path!r}).st_mtime>={HEARTBEAT_STALE})"
    return ["CMD", "python3", "-I", "-S", "-c", script]


def start_heartbeat(path: Path) -> None:
    """Touch `path` every HEARTBEAT_EVERY seconds while the process lives."""

    def beat() -> None:
        while True:
            path.touch()
            time.sleep(HEARTBEAT_EVERY)

    threading.Thread(target=beat, daemon=True).start()


def beating(path: Path, now: float | None = None) -> bool:
    """Whether the heartbeat at `path` is younger than HEARTBEAT_STALE seconds."""
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except FileNotFoundError:
        return False
    return age < HEARTBEAT_STALE


def run_on_schedule(expression: str, job: Callable[[datetime], None], *, what: str, say: Callable[[str], None]) -> None:
    """Forever: sleep until `expression` (UTC) fires next, then `job(that time)`; `job` handles its own failures."""
    while True:
        due = next_time(expression, datetime.now(UTC))
        say(f"next {what} at {due:%Y-%m-%d %H:%M:%S} UTC")
        while (left := (due - datetime.now(UTC)).total_seconds()) > 0:
            time.sleep(min(left, 30))
        job(due)
