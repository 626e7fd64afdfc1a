"""`invoke report`: what each student (an MLflow login, or a run's user without logins) has done.

Pure: the SQL each target runs with its `psql`, and the sums over what it answers and over the
bucket's object sizes. Per student: active runs, deleted runs, experiments created, the last
activity (the newest run start, run end or latest metric) and the bytes of their runs' artifacts.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlparse

# Every run with its user, stage, artifact location and newest timestamp (ms), as one JSON array.
# latest_metrics, not metrics: one row per run and key, where metrics holds every logged value (millions in
# a term) without an index that starts with the run.
RUNS_SQL = """\
SELECT coalesce(json_agg(json_build_array(coalesce(r.user_id, ''), r.lifecycle_stage, coalesce(r.artifact_uri, ''),
       greatest(r.start_time, r.end_time,
                (SELECT max(m.timestamp) FROM latest_metrics m WHERE m.run_uuid = r.run_uuid)))), '[]')
FROM runs r;
"""

# In the logins database: every login, and how many experiments each manages by creating them (MLflow
# grants MANAGE on an experiment to the login that creates it), as one JSON object.
LOGINS_SQL = """\
SELECT json_build_object(
  'users', (SELECT coalesce(json_agg(username ORDER BY username), '[]') FROM users),
  'experiments', (SELECT coalesce(json_object_agg(u.username, p.n), '{}')
                  FROM (SELECT user_id, count(*) AS n FROM experiment_permissions
                        WHERE permission = 'MANAGE' GROUP BY user_id) p JOIN users u ON u.id = p.user_id));
"""

HEADER = ("student", "runs", "deleted runs", "experiments", "last activity (UTC)", "artifacts")
UNKNOWN_USER = "(no user)"


@dataclass
class Student:
    """One line of the report."""

    name: str
    runs: int = 0
    deleted_runs: int = 0
    experiments: int | None = None  # None: not known (no logins: MLflow records no experiment's creator)
    last_activity_ms: int | None = None
    artifact_bytes: int = 0

    @property
    def last_activity(self) -> str:
        if self.last_activity_ms is None:
            return ""
        return datetime.fromtimestamp(self.last_activity_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M")


def bucket_prefix(artifact_uri: str, bucket: str) -> str | None:
    """Where a run's artifacts are in the bucket: the key prefix of its artifact location, or None when
    they are elsewhere. `mlflow-artifacts:/1/<run>/artifacts` (the server's proxy, whose destination is
    the bucket's root) and `s3://<bucket>/...` both map to `1/<run>/artifacts/`."""
    parsed = urlparse(artifact_uri)
    if parsed.scheme != "mlflow-artifacts" and (parsed.scheme, parsed.netloc) != ("s3", bucket):
        return None
    path = parsed.path.strip("/")
    return f"{path}/" if path else None


def bytes_by_prefix(sizes: Mapping[str, int], prefixes: set[str]) -> dict[str, int]:
    """The bytes under each prefix: an object counts for the prefixes among its key's parent folders."""
    found = dict.fromkeys(prefixes, 0)
    for key, size in sizes.items():
        cut = key.find("/")
        while cut != -1:
            parent = key[: cut + 1]
            if parent in found:
                found[parent] += size
            cut = key.find("/", cut + 1)
    return found


def build(runs_json: str, logins_json: str | None, sizes: Mapping[str, int], *, bucket: str) -> list[Student]:
    """The report's students, by name: `runs_json` is RUNS_SQL's answer, `logins_json` LOGINS_SQL's
    (None without logins), `sizes` every object of the bucket with its bytes."""
    students: dict[str, Student] = {}
    if logins_json is not None:
        logins = json.loads(logins_json)
        experiments: dict[str, int] = logins["experiments"] or {}
        for name in logins["users"] or []:
            students[name] = Student(name, experiments=int(experiments.get(name, 0)))
    run_prefixes: list[tuple[str, str]] = []
    for user, stage, artifact_uri, last in json.loads(runs_json):
        name = user or UNKNOWN_USER
        student = students.setdefault(name, Student(name))
        if stage == "deleted":
            student.deleted_runs += 1
        else:
            student.runs += 1
        if last is not None and (student.last_activity_ms is None or last > student.last_activity_ms):
            student.last_activity_ms = int(last)
        prefix = bucket_prefix(artifact_uri, bucket)
        if prefix:
            run_prefixes.append((name, prefix))
    under = bytes_by_prefix(sizes, {prefix for _, prefix in run_prefixes})
    for name, prefix in run_prefixes:
        students[name].artifact_bytes += under[prefix]
    return sorted(students.values(), key=lambda student: student.name)


def human_bytes(count: int) -> str:
    """1536 -> '1.5 KiB'."""
    size = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{count} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _experiments(student: Student) -> str:
    return "-" if student.experiments is None else str(student.experiments)


def table_rows(students: list[Student]) -> list[tuple[str, ...]]:
    """The report as `console.table` prints it: a header, then one row per student."""
    rows: list[tuple[str, ...]] = [HEADER]
    for s in students:
        size = human_bytes(s.artifact_bytes)
        rows.append((s.name, str(s.runs), str(s.deleted_runs), _experiments(s), s.last_activity or "-", size))
    return rows


def to_csv(students: list[Student]) -> str:
    """The report as CSV: bytes as a number, times in ISO 8601 (UTC), an unknown count empty."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("student", "runs", "deleted_runs", "experiments", "last_activity_utc", "artifact_bytes"))
    for s in students:
        experiments = "" if s.experiments is None else str(s.experiments)
        writer.writerow((s.name, s.runs, s.deleted_runs, experiments, s.last_activity, s.artifact_bytes))
    return out.getvalue()
