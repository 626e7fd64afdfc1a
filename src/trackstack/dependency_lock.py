"""`invoke lock`: pin every dependency of the MLflow image for one MLflow release, reproducibly.

uv (a dev dependency, pinned) resolves the image's requirements from PyPI as they were
on one date, for the base image's Python on Linux, wheels only, with the sha256 of every file
of every pinned release: the image installs it with `pip install --require-hashes --no-deps`,
so what it installs is exactly what was locked. The resolution is checked to be the same on
aarch64 (the base image is published for both). The lock's header names the exact command, and
a later `invoke lock` reuses that date, so it writes the same file again.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from trackstack.errors import TrackstackError
from trackstack.mlflow_image import image_requirements
from trackstack.paths import constraints_file

_DATE_IN_HEADER = re.compile(r"--exclude-newer[ =](\d{4}-\d{2}-\d{2})\b")
_PYTHON_TAG = re.compile(r":(\d+\.\d+)")
# The base image's platforms (python:*-slim is published for both): the lock resolves for the first,
# with hashes, and must pin the same on the second. manylinux_2_28: any glibc of a Debian base since 2019.
PLATFORMS = ("x86_64-manylinux_2_28", "aarch64-manylinux_2_28")

Runner = Callable[..., subprocess.CompletedProcess[str]]


class LockError(TrackstackError):
    """The resolver is missing or could not resolve the image's requirements."""


def requirements(mlflow_version: str) -> str:
    """What the MLflow image installs (render.image_requirements), one per line, as uv reads them."""
    return "".join(f"{requirement}\n" for requirement in image_requirements(mlflow_version))


def python_version(base_image: str) -> str:
    """The Python minor of the MLflow image's base, from its tag (python:3.13-slim-trixie -> 3.13)."""
    match = _PYTHON_TAG.search(base_image.rsplit("/", 1)[-1])
    if not match:
        raise LockError(
            f"cannot tell the Python version of MLFLOW_BASE_IMAGE={base_image!r}. "
            "Fix: pin a python image whose tag starts with its version, e.g. python:3.13-slim-trixie."
        )
    return match[1]


def compile_args(python: str, exclude_newer: str, platform: str = PLATFORMS[0], *, hashes: bool = True) -> list[str]:
    """`uv pip compile` reading the requirements on stdin; only packages published before the date count,
    only wheels (the image compiles nothing), with every file's hash unless `hashes` is false."""
    return [
        "uv", "pip", "compile", "-",
        "--python-version", python,
        "--python-platform", platform,
        "--exclude-newer", exclude_newer,
        "--only-binary", ":all:",
        "--no-python-downloads",
        "--no-header",
        "--no-annotate",
        *(["--generate-hashes"] if hashes else []),
    ]  # fmt: skip


def pins(lock: str) -> list[str]:
    """The `name==version` lines of a lock, without its hashes (what a `--constraint` file takes)."""
    return [line.split()[0] for line in lock.splitlines() if line and not line[0].isspace() and line[0] != "#"]


def unhashed(lock: str) -> list[str]:
    """The pins of a lock that carry no `--hash`: the image's hash-checked install would refuse them."""
    missing, current, hashed = [], "", True
    for line in [*lock.splitlines(), "end"]:
        if line.startswith("#") or not line.strip():
            continue
        if not line[0].isspace():
            if current and not hashed:
                missing.append(current)
            current, hashed = line.split()[0], "--hash=sha256:" in line
        else:
            hashed = hashed or "--hash=sha256:" in line
    return missing


def header(mlflow_version: str, args: list[str]) -> str:
    """Two comment lines: what the lock is for, and the exact command that wrote it."""
    printf_format = requirements(mlflow_version).replace("\n", "\\n")
    return (
        f"# Lock for the MLflow image (MLFLOW_VERSION={mlflow_version}), written by `invoke lock`.\n"
        f"# Command: printf {shlex.quote(printf_format)} | {shlex.join(args)}\n"
    )


def previous_date(path: Path) -> str | None:
    """The --exclude-newer date in an existing lock's header, so that locking again changes nothing."""
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as stream:
        for line in stream:
            if not line.startswith("#"):
                break
            match = _DATE_IN_HEADER.search(line)
            if match:
                return match[1]
    return None


def write_lock(
    mlflow_version: str,
    base_image: str,
    *,
    exclude_newer: str | None = None,
    run: Runner = subprocess.run,
) -> tuple[Path, str]:
    """Resolve and write constraints/mlflow-<version>.txt; return its path and the date used."""
    path = constraints_file(mlflow_version)
    date = exclude_newer or previous_date(path) or datetime.now(UTC).strftime("%Y-%m-%d")
    python = python_version(base_image)
    args = compile_args(python, date)
    locked = _compile(run, args, mlflow_version, python, date)
    other = _compile(run, compile_args(python, date, PLATFORMS[1], hashes=False), mlflow_version, python, date)
    if pins(locked) != pins(other):
        differ = sorted(set(pins(locked)) ^ set(pins(other)))
        raise LockError(
            f"MLflow {mlflow_version} resolves differently on {PLATFORMS[0]} and {PLATFORMS[1]}: "
            f"{', '.join(differ)}. Fix: pass another --exclude-newer date, or pin the package in mlflow_image.py."
        )
    if f"mlflow=={mlflow_version}" not in pins(locked) or unhashed(locked):
        raise LockError(
            f"uv's resolution lacks mlflow=={mlflow_version} or a hash ({', '.join(unhashed(locked))}):\n{locked}"
        )
    body = "".join(f"{line}\n" for line in locked.splitlines() if line and not line.startswith("#"))
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(header(mlflow_version, args) + body, encoding="utf-8", newline="\n")
    temporary.replace(path)
    return path, date


def _compile(run: Runner, args: list[str], mlflow_version: str, python: str, date: str) -> str:
    """uv's output for `args`; uv ships as a Python package: run the one installed beside trackstack."""
    try:
        result = run([sys.executable, "-m", *args], input=requirements(mlflow_version), capture_output=True, text=True)
    except FileNotFoundError:
        raise LockError(f"{sys.executable} is gone; reinstall with `pip install -e '.[dev]'`") from None
    if result.returncode != 0:
        detail = (result.stderr or "").strip()
        if "No module named uv" in detail:
            raise LockError("uv is not installed here. Fix: `pip install -e '.[dev]'` (uv is a dev dependency).")
        raise LockError(
            f"uv could not resolve MLflow {mlflow_version} for Python {python} (packages before {date}):\n"
            f"{detail}\nFix: check the version on PyPI, or pass another --exclude-newer date."
        )
    return result.stdout
