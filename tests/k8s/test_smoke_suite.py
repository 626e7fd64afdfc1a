"""The live smoke suite (tests/live) against the deployed stack, with logins on.

Collected here, so that its fixtures resolve to this suite's (conftest.py): `target` reaches
MLflow through its NodePort Service and Postgres, MinIO and pgAdmin through `kubectl
port-forward`s of theirs; `auth_stack` is the deployed stack itself, which has logins and
MLFLOW_PUBLIC_HOSTS already. Every test of test_smoke.py and test_auth.py runs: none is
compose-only (only the compose suite's `auth_stack` switch is, and this suite replaces it).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.live.test_auth import *  # noqa: F403 - every test and fixture of the module, collected here
from tests.live.test_smoke import *  # noqa: F403 - every test and fixture of the module, collected here


@pytest.fixture(scope="module", autouse=True)
def _fail_fast() -> Iterator[None]:
    """As tests/live/conftest.py: a smoke test fails in seconds. For this module only: the resilience
    tests rely on the MLflow client's retries."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        patch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        yield
