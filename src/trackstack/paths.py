"""Files that ship with trackstack: the templates and the MLflow image's dependency locks."""

from pathlib import Path

PROJECT_FILES = Path(__file__).resolve().parents[2]
TEMPLATES = PROJECT_FILES / "templates"
CONSTRAINTS = PROJECT_FILES / "constraints"


def constraints_file(mlflow_version: str) -> Path:
    """The lock of the MLflow image's dependencies for one MLflow release."""
    return CONSTRAINTS / f"mlflow-{mlflow_version}.txt"


def supported_mlflow_versions() -> list[str]:
    return sorted(path.stem.removeprefix("mlflow-") for path in CONSTRAINTS.glob("mlflow-*.txt"))
