"""The published advisories against the images trackstack pins, each with its fix.

One small table: `.env`'s check of MLflow's logins (validation.py) and `invoke doctor`'s
"exposure" section read it. An advisory here is one that a pinned default (or a version
trackstack still offers) has; the table says which releases it affects and what ends it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RELEASE = re.compile(r"(\d+)\.(\d+)\.(\d+)")
# MinIO's image tags: RELEASE.2025-09-07T16-13-09Z; its releases sort by their date.
_MINIO_RELEASE = re.compile(r"RELEASE\.(\d{4}-\d{2}-\d{2})T")


@dataclass(frozen=True)
class Advisory:
    """One published advisory: what it names, how bad, which releases and the way out."""

    id: str  # the name `.env` and the reports use (a CVE, with its GHSA when there is one)
    product: str
    severity: str
    fixed_in: str  # the first release without it ("" when no published release fixes it)
    affects: str  # what it is about, in a few words
    fix: str  # what to change in `.env`


# MLflow's basic-auth app (MLFLOW_AUTH=true) served by uvicorn: both are fixed in releases trackstack locks.
MLFLOW_AUTH_ADVISORIES = (
    Advisory(
        "CVE-2026-2652", "MLflow", "High", "3.10.0", "the basic-auth app served by uvicorn",
        "MLFLOW_VERSION=3.10.0 or later",
    ),
    Advisory(
        "CVE-2026-3198", "MLflow", "High", "3.11.0", "the basic-auth app served by uvicorn",
        "MLFLOW_VERSION=3.11.0 or later",
    ),
)  # fmt: skip
MINIO = Advisory(
    "CVE-2025-62506 / GHSA-jjjj-jwhf-8rgr", "MinIO", "High", "RELEASE.2025-10-15",
    "privilege escalation of service accounts; fixed only in source, the community edition publishes no image",
    "ARTIFACT_STORE=seaweedfs (docs/artifact-stores.md)",
)  # fmt: skip
CADDY = Advisory(
    "CVE-2026-27587 to CVE-2026-27590", "Caddy", "High", "2.11.1", "the proxy that terminates TLS",
    "PROXY_IMAGE=caddy:2.11.1 or later (.env.example pins the newest)",
)  # fmt: skip
KNOWN_MLFLOW_IDS = tuple(advisory.id for advisory in MLFLOW_AUTH_ADVISORIES)


def release(version: str) -> tuple[int, int, int] | None:
    """A `major.minor.patch` release in a version or an image tag (caddy:2.10.2-alpine -> (2, 10, 2))."""
    match = _RELEASE.search(version)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def _before(version: str, fixed_in: str) -> bool:
    found, fixed = release(version), release(fixed_in)
    return found is not None and fixed is not None and found < fixed


def mlflow_auth(mlflow_version: str) -> list[Advisory]:
    """The advisories against MLflow `mlflow_version`'s logins (MLFLOW_AUTH=true)."""
    return [advisory for advisory in MLFLOW_AUTH_ADVISORIES if _before(mlflow_version, advisory.fixed_in)]


def minio(image: str) -> list[Advisory]:
    """MINIO when `image` is a MinIO release from before the fix (an unknown tag counts: no image fixes it)."""
    tag = image.rpartition(":")[2] if "@" not in image else ""
    match = _MINIO_RELEASE.search(tag)
    return [MINIO] if match is None or match[1] < MINIO.fixed_in.removeprefix("RELEASE.") else []


def caddy(image: str) -> list[Advisory]:
    """CADDY when `image`'s tag is a Caddy release before the fix."""
    tag = image.split("@")[0].rpartition(":")[2]
    return [CADDY] if _before(tag, CADDY.fixed_in) else []


def accepted(value: str) -> list[str]:
    """The advisory names of MLFLOW_AUTH_ACCEPT_ADVISORIES, in its order."""
    return [name.strip() for name in value.split(",") if name.strip()]
