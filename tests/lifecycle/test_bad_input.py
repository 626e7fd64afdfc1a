"""A bad `.env` is refused before anything changes: files, containers and data stay as they were."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.lifecycle.helpers import Invoke, started
from trackstack.project import Project

BAD = {
    "MLFLOW_PORT": "abc",
    "MINIO_ROOT_PASSWORD": "short",
    "RESTART_POLICY": "sometimes",
}


@pytest.fixture
def bad_env(project: Project, tmp_path: Path) -> Path:
    lines = []
    for line in project.env_file.read_text().splitlines():
        key = line.split("=", 1)[0]
        lines.append(f"{key}={BAD[key]}" if key in BAD else line)
    path = tmp_path / "bad.env"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("task", [("up",), ("render",), ("reset", "--yes"), ("down",), ("seed",)])
def test_bad_env_changes_nothing(project: Project, invoke: Invoke, bad_env: Path, task: tuple[str, ...]) -> None:
    generated = {name: (project.root / name).read_bytes() for name in ("compose.yaml", "Dockerfile.mlflow")}
    mtimes = {name: (project.root / name).stat().st_mtime_ns for name in generated}
    before = started(project)
    result = invoke(*task, check=False, env_file=bad_env)
    assert result.returncode == 1
    for key in BAD:
        assert f"{key}=" in result.stderr
    assert "short" not in result.stderr  # the secret's value is masked
    assert started(project) == before
    for name, content in generated.items():
        assert (project.root / name).read_bytes() == content
        assert (project.root / name).stat().st_mtime_ns == mtimes[name]
