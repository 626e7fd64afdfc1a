"""`invoke lock`: the command it runs, the file it writes, and that a second run writes the same."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest

from trackstack import dependency_lock as lock
from trackstack.mlflow_image import image_requirements
from trackstack.paths import constraints_file, supported_mlflow_versions
from trackstack.problems import SettingsError
from trackstack.validation import validate

PINS = "alembic==1.20.1\nmlflow==3.17.2\nmlflow-skinny==3.17.2\n"


def hashed(pins: str) -> str:
    """uv's --generate-hashes output for `pins`: each pin continued by its files' hashes."""
    return "".join(f"{pin} \\\n    --hash=sha256:{'a' * 64} \\\n    --hash=sha256:{'b' * 64}\n" for pin in pins.split())


class FakeUv:
    """Stands in for `python -m uv pip compile`: records each call, answers with fixed pins (hashed when asked)."""

    def __init__(self, stdout: str = PINS, returncode: int = 0, stderr: str = "", aarch64: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.answer = (stdout, returncode, stderr)
        self.aarch64 = stdout if aarch64 is None else aarch64

    def __call__(self, args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        assert kwargs["input"] == lock.requirements("3.17.2")
        stdout, returncode, stderr = self.answer
        if "aarch64-manylinux_2_28" in args:
            stdout = self.aarch64
        if "--generate-hashes" in args:
            stdout = hashed(stdout)
        return subprocess.CompletedProcess(args, returncode, stdout, stderr)


@pytest.fixture
def target(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "mlflow-3.17.2.txt"
    monkeypatch.setattr(lock, "constraints_file", lambda version: tmp_path / f"mlflow-{version}.txt")
    return path


def test_the_python_version_comes_from_the_base_image_tag() -> None:
    assert lock.python_version("python:3.13-slim-trixie") == "3.13"
    assert lock.python_version("registry.example:5000/python:3.12") == "3.12"
    with pytest.raises(lock.LockError, match="MLFLOW_BASE_IMAGE"):
        lock.python_version("python:slim")


def test_the_lock_resolves_wheels_for_linux_as_pypi_was_on_a_date_with_hashes() -> None:
    args = lock.compile_args("3.13", "2026-11-29")
    assert args[:4] == ["uv", "pip", "compile", "-"]
    for option, value in (
        ("--python-version", "3.13"),
        ("--python-platform", "x86_64-manylinux_2_28"),
        ("--exclude-newer", "2026-11-29"),
        ("--only-binary", ":all:"),
    ):
        assert args[args.index(option) + 1] == value
    assert "--generate-hashes" in args
    assert "--generate-hashes" not in lock.compile_args("3.13", "2026-11-29", "aarch64-manylinux_2_28", hashes=False)


def test_lock_writes_the_header_with_the_exact_command_and_the_hashed_pins(target: Path) -> None:
    uv = FakeUv()
    written, date = lock.write_lock("3.17.2", "python:3.13-slim-trixie", exclude_newer="2026-11-29", run=uv)
    assert (written, date) == (target, "2026-11-29")
    text = target.read_text()
    header = text.splitlines()[1]
    assert header.startswith("# Command: printf ")
    assert shlex.join(lock.compile_args("3.13", "2026-11-29")) in header
    assert text.endswith(hashed(PINS))
    assert lock.pins(text) == PINS.split()
    assert uv.calls[0][1:3] == ["-m", "uv"]
    assert [call[call.index("--python-platform") + 1] for call in uv.calls] == list(lock.PLATFORMS)


def test_a_resolution_that_differs_on_aarch64_is_refused_naming_the_packages(target: Path) -> None:
    uv = FakeUv(aarch64=PINS.replace("alembic==1.20.1", "alembic==1.20.0"))
    with pytest.raises(lock.LockError, match=r"aarch64.*alembic==1\.20\.0, alembic==1\.20\.1"):
        lock.write_lock("3.17.2", "python:3.13-slim-trixie", exclude_newer="2026-11-29", run=uv)
    assert not target.exists()


def test_unhashed_names_the_pins_without_a_hash() -> None:
    text = hashed("alembic==1.20.1") + "mlflow==3.17.2\n" + hashed("six==1.17.0") + "uvloop==0.22.1\n"
    assert lock.unhashed(text) == ["mlflow==3.17.2", "uvloop==0.22.1"]
    assert lock.unhashed(hashed(PINS)) == []


def test_locking_again_reuses_the_date_and_writes_the_same_file(target: Path) -> None:
    lock.write_lock("3.17.2", "python:3.13-slim-trixie", exclude_newer="2026-01-10", run=FakeUv())
    first = target.read_text()
    uv = FakeUv()
    _, date = lock.write_lock("3.17.2", "python:3.13-slim-trixie", run=uv)
    assert date == "2026-01-10"
    assert "2026-01-10" in uv.calls[0]
    assert target.read_text() == first


def test_a_failed_resolution_names_the_version_and_keeps_the_old_lock(target: Path) -> None:
    target.write_text("old\n")
    uv = FakeUv(stdout="", returncode=1, stderr="No solution found: mlflow-skinny==3.17.2 is unavailable")
    with pytest.raises(lock.LockError, match=r"MLflow 3\.17\.2.*\n.*No solution found"):
        lock.write_lock("3.17.2", "python:3.13-slim-trixie", run=uv)
    assert target.read_text() == "old\n"


def test_the_committed_default_lock_was_written_by_invoke_lock() -> None:
    path = constraints_file("3.17.2")
    assert lock.previous_date(path) == "2026-11-29"
    command = shlex.join(lock.compile_args("3.13", "2026-11-29"))
    assert command in path.read_text().splitlines()[1]
    assert "mlflow==3.17.2" in lock.pins(path.read_text())


@pytest.mark.parametrize("version", supported_mlflow_versions())
def test_every_pin_of_every_committed_lock_has_its_hashes(version: str) -> None:
    """The image installs with --require-hashes: a pin without a hash would fail its build."""
    text = constraints_file(version).read_text()
    assert lock.pins(text)
    assert lock.unhashed(text) == []
    assert all(line.startswith(("#", "    --hash=sha256:")) or "==" in line for line in text.splitlines())


@pytest.mark.parametrize("version", supported_mlflow_versions())
def test_every_lock_pins_everything_the_image_asks_for(version: str) -> None:
    """An unpinned requirement would install whatever PyPI has on the day of the build."""
    pinned = {pin.partition("==")[0] for pin in lock.pins(constraints_file(version).read_text())}
    asked = {requirement.partition("[")[0].partition("==")[0] for requirement in image_requirements(version)}
    assert asked <= pinned
    assert {"uvloop", "httptools"} <= asked


def test_both_versions_are_locked_and_listed_oldest_first() -> None:
    versions = supported_mlflow_versions()
    assert versions.index("3.8.1") < versions.index("3.17.2")


def test_a_version_without_a_lock_is_refused_with_the_command_that_makes_one(values: dict[str, str]) -> None:
    values["MLFLOW_VERSION"] = "3.9.0"
    with pytest.raises(SettingsError) as caught:
        validate(values)
    (problem,) = caught.value.problems
    assert "no dependency lock constraints/mlflow-3.9.0.txt" in problem.reason
    assert "3.8.1, 3.17.2" in problem.reason
    assert "`invoke lock`" in problem.fix
