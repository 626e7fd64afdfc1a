"""One state-changing task at a time per project folder: a lock file that the kernel releases.

`flock` on `.trackstack/lock` is held for the whole task and dropped by the kernel when the
process ends, however it ends, so a crashed task never leaves a stale lock behind. A second
task waits for the first (saying which one it waits for) and gives up after `timeout`.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from trackstack.errors import TrackstackError

LOCK_FILE = Path(".trackstack") / "lock"


class BusyError(TrackstackError):
    """Another trackstack task holds the project's lock."""


def _holder(path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError:
        text = ""
    return text or "another trackstack task"


@contextmanager
def project_lock(
    root: Path,
    task: str,
    *,
    timeout: float = 900,
    poll: float = 0.5,
    say: Callable[[str], None] = lambda message: print(f"trackstack: {message}", flush=True),
) -> Iterator[None]:
    """Hold the project's lock while `task` runs; wait up to `timeout` seconds for another task."""
    path = root / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        announced = False
        while True:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(path)
                if time.monotonic() >= deadline:
                    raise BusyError(
                        f"{holder} is still running in {root} after {timeout:.0f}s; `invoke {task}` did nothing. "
                        "Fix: wait for it to finish (or stop it), then retry."
                    ) from None
                if not announced:
                    say(f"waiting for {holder} to finish before `invoke {task}`")
                    announced = True
                time.sleep(poll)
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"`invoke {task}` (pid {os.getpid()})\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(descriptor, 0)
            fcntl.flock(descriptor, fcntl.LOCK_UN)
    finally:
        os.close(descriptor)
