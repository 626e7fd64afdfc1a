"""What the scheduled backups left at BACKUP_DEST, as seen from this machine, whatever the target.

`invoke backups` lists them; `invoke restore latest` (or a backup's name, or its s3:// URL) fetches
one into a private temporary folder, where it is verified before the target's own restore (all or
nothing, asking first) takes it; `status` and `doctor` warn when the newest verified one is late.
A directory BACKUP_DEST is read where this machine sees it; a bucket with BACKUP_S3_* and boto3.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from trackstack import schedule
from trackstack.backup_dest import (
    Destination,
    DestinationError,
    S3Credentials,
    S3Location,
    is_backup_name,
    is_s3,
    listing_text,
    newest_verified,
    open_destination,
)
from trackstack.backup_format import private_folder, verify
from trackstack.errors import TrackstackError
from trackstack.settings import Settings

LATEST = "latest"


def credentials(settings: Settings) -> S3Credentials:
    return S3Credentials(
        endpoint=settings.backup_s3_endpoint,
        access_key=settings.backup_s3_access_key,
        secret_key=settings.backup_s3_secret_key.get_secret_value(),
        region=settings.backup_s3_region,
    )


def destination(settings: Settings, where: str = "") -> Destination:
    dest = where or settings.backup_dest
    if not dest:
        raise TrackstackError("BACKUP_DEST is empty: there is no backup destination. Fix: set it in .env.")
    return open_destination(dest, credentials(settings))


def listing(settings: Settings) -> str:
    """`invoke backups`: what exists at BACKUP_DEST, newest first."""
    found = destination(settings)
    return listing_text(found.where, found.entries())


def is_destination_backup(spec: str) -> bool:
    """Whether `invoke restore SPEC` names a backup at a destination rather than a local folder."""
    return spec == LATEST or is_backup_name(spec) or is_s3(spec)


def locate(settings: Settings, spec: str) -> tuple[Destination, str]:
    """The destination and name of `latest`, a backup's name (at BACKUP_DEST) or `s3://bucket/prefix/<name>`."""
    if is_s3(spec):
        parent, _, name = spec.rstrip("/").rpartition("/")
        if not is_backup_name(name):
            raise TrackstackError(f"{spec} does not end in a backup's name (e.g. .../20261207T030000Z)")
        S3Location.parse(parent)  # a bad URL says so
        return destination(settings, parent), name
    found = destination(settings)
    if spec != LATEST:
        return found, spec
    newest = newest_verified(found.entries())
    if newest is None:
        raise TrackstackError(
            f"no verified backup at {found.where}; nothing was restored. Fix: `invoke backups` lists what is there."
        )
    return found, newest.name


@contextmanager
def fetched(settings: Settings, spec: str) -> Iterator[Path]:
    """A verified local copy of a destination's backup, in a private folder removed afterwards."""
    where, name = locate(settings, spec)
    scratch = Path(tempfile.mkdtemp(prefix="trackstack-fetch-"))
    private_folder(scratch)
    try:
        folder = where.fetch(name, scratch)
        verify(folder)
        yield folder
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def lateness(settings: Settings, now: datetime | None = None) -> str | None:
    """A warning when BACKUP_SCHEDULE is set and the newest verified backup is two periods old, or absent."""
    if not settings.backup_schedule:
        return None
    now = now or datetime.now(UTC)
    try:
        entries = destination(settings).entries()
    except (DestinationError, OSError) as error:
        return f"scheduled backups: cannot read BACKUP_DEST {settings.backup_dest} from here ({error})"
    except Exception as error:  # boto3's errors: no credentials, no bucket, no network
        return f"scheduled backups: cannot read BACKUP_DEST {settings.backup_dest} ({type(error).__name__}: {error})"
    newest = newest_verified(entries)
    if not schedule.late(settings.backup_schedule, newest.created if newest else None, now):
        return None
    due = schedule.next_time(settings.backup_schedule, now)
    if newest is None:
        return (
            f"scheduled backups: no verified backup at {settings.backup_dest} yet "
            f"(the next run is due {due:%Y-%m-%d %H:%M} UTC)"
        )
    age = now - newest.created
    return (
        f"scheduled backups: the newest verified backup ({newest.name}) is {age.days}d {age.seconds // 3600}h old, "
        f"more than two periods of BACKUP_SCHEDULE={settings.backup_schedule!r}; the backup service's logs say why"
    )
