"""Smoke tests: they talk to the running stack over its published ports (fixtures in tests/conftest.py)."""

from __future__ import annotations

import os

# A smoke test should fail in seconds, not after the MLflow client's minutes of retries.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
