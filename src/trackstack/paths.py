"""Where trackstack's files are: the templates, the MLflow image's dependency locks, `.env`."""

import os
from pathlib import Path

PROJECT_FILES = Path(__file__).resolve().parents[2]
TEMPLATES = PROJECT_FILES / "templates"
CONSTRAINTS = PROJECT_FILES / "constraints"
# What `invoke render` writes for Docker Compose, in the project folder.
COMPOSE_FILE = "compose.yaml"
# The one way to point tasks, tests and the benchmark at another `.env` (README, Configuration).
ENV_FILE_VARIABLE = "TRACKSTACK_ENV_FILE"


def env_file(root: Path) -> Path:
    """The `.env` of the project in `root`: $TRACKSTACK_ENV_FILE (relative to `root`) or `root/.env`."""
    return root / os.environ.get(ENV_FILE_VARIABLE, ".env")


def constraints_file(mlflow_version: str) -> Path:
    """The lock of the MLflow image's dependencies for one MLflow release."""
    return CONSTRAINTS / f"mlflow-{mlflow_version}.txt"


def supported_mlflow_versions() -> list[str]:
    """The MLflow releases with a lock, oldest first."""
    versions = (path.stem.removeprefix("mlflow-") for path in CONSTRAINTS.glob("mlflow-*.txt"))
    return sorted(versions, key=lambda v: tuple(int(n) if n.isdigit() else 0 for n in v.split(".")))
