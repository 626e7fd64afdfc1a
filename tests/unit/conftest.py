from __future__ import annotations

import pytest
from dotenv import dotenv_values

from tests.conftest import ROOT
from trackstack.settings import Settings
from trackstack.validation import validate

STRONG = {
    "POSTGRES_PASSWORD": "pg-Strong-Secret-4711",
    "PGADMIN_DEFAULT_PASSWORD": "pga-Strong-Secret-4712",
    "MINIO_ROOT_PASSWORD": "minio-Strong-Secret-4713",
    "MLFLOW_ADMIN_PASSWORD": "mlflow-Strong-Secret-4714",
    "MLFLOW_FLASK_SERVER_SECRET_KEY": "mlflow-Strong-Secret-Key-4715",
    "MLFLOW_DB_PASSWORD": "mlflow-db-Strong-Secret-4716",
    "MLFLOW_S3_SECRET_KEY": "mlflow-s3-Strong-Secret-4717",
}


@pytest.fixture
def values() -> dict[str, str]:
    """The documented example with strong secrets: a valid `.env`."""
    raw = dotenv_values(ROOT / ".env.example", interpolate=False)
    return {key: value or "" for key, value in raw.items()} | STRONG


@pytest.fixture
def settings(values: dict[str, str]) -> Settings:
    return validate(values)
