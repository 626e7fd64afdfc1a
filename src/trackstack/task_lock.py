"""One state-changing task at a time per project folder: a lock file that the operating system releases.

The lock on `.trackstack/lock` (filelock: `flock` on Linux and macOS, `msvcrt.locking` on Windows)
is held for the whole task and dropped by the operating system when the process ends, however it
ends, so a crashed task never leaves a stale lock behind. A second task waits for the first (saying
which one it waits for, from `.trackstack/lock.holder`) and gives up after `timeout`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from filelock import FileLock, Timeout

from trackstack.console import say as say_line
from trackstack.errors import TrackstackError

LOCK_FILE = Path(".trackstack") / "lock"
# Which task holds the lock, in a file of its own: Windows lets no other process read a locked file.
HOLDER_FILE = LOCK_FILE.with_name("lock.holder")


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
    say: Callable[[str], None] = say_line,
) -> Iterator[None]:
    """Hold the project's lock while `task` runs; wait up to `timeout` seconds for another task."""
    path, holder = root / LOCK_FILE, root / HOLDER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(path, mode=0o600)
    deadline = time.monotonic() + timeout
    announced = False
    while True:
        try:
            lock.acquire(timeout=0)
            break
        except Timeout:
            held_by = _holder(holder)
            if time.monotonic() >= deadline:
                raise BusyError(
                    f"{held_by} is still running in {root} after {timeout:.0f}s; `invoke {task}` did nothing. "
                    "Fix: wait for it to finish (or stop it), then retry."
                ) from None
            if not announced:
                say(f"waiting for {held_by} to finish before `invoke {task}`")
                announced = True
            time.sleep(poll)
    try:
        holder.write_text(f"`invoke {task}` (pid {os.getpid()})\n", encoding="utf-8", newline="\n")
        yield
    finally:
        with suppress(OSError):
            holder.write_text("", encoding="utf-8")
        lock.release()
