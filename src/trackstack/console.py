"""What trackstack says and writes: its `trackstack: ` lines, quoted command output, tables, and
the generated files it writes; also running independent slow calls at once.

Every layer uses it; it imports nothing of trackstack.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any


def say(message: str) -> None:
    print(f"trackstack: {message}", flush=True)


def indent(text: str) -> str:
    """A command's output, indented under the error that quotes it."""
    return "\n".join(f"    {line}" for line in text.splitlines()) or "    (no output)"


def relay(output: str) -> None:
    """Say again the `trackstack: ` lines of a job's output (a Swarm job's or a Kubernetes Job's)."""
    for line in output.splitlines():
        if line.startswith("trackstack: "):
            say(line.removeprefix("trackstack: "))


def table(rows: list[tuple[str, ...]]) -> str:
    """Rows as aligned columns."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    )


def concurrently(*calls: Callable[[], Any]) -> list[Any]:
    """Run independent calls (mostly docker commands, which wait on the engine) at once; results in order."""
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return [future.result() for future in [pool.submit(call) for call in calls]]


def write_files(root: Path, files: Mapping[str, str]) -> list[str]:
    """Write each file (by its name under `root`) whose text changed; return their names."""
    changed = []
    for name, text in files.items():
        path = root / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            _write_atomically(path, text)
            changed.append(name)
    return changed


def _write_atomically(path: Path, text: str) -> None:
    # A name of its own per writer: two tasks rendering at once must not rename each other's file.
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as stream:
        stream.write(text)
    os.chmod(temporary, 0o644)  # mkstemp's 600 would hide the compose file from other users' docker
    Path(temporary).replace(path)
