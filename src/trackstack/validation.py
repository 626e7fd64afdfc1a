"""From raw `.env` values to `Settings`, collecting every problem before anything runs.

Field checks live on the model; here are the checks across keys (unknown and missing keys,
port clashes, weak secrets) and the wording of pydantic's errors.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from trackstack import advisories
from trackstack.envfile import read_env_file
from trackstack.paths import supported_mlflow_versions
from trackstack.problems import Problem, SettingsError, dedupe, mask
from trackstack.services import PORT_KEYS
from trackstack.settings import (
    BACKUP_DEST_MISSING,
    KEYS,
    MLFLOW_ADMIN_MIN_PASSWORD,
    MLFLOW_SECRET_KEY_MIN,
    NO_LOCK,
    OPTIONAL_KEYS,
    SECRET_KEYS,
    Settings,
    describe,
)
from trackstack.tls import tls_problems

# Values that the upstream images accept but that nobody should run with.
WEAK_SECRETS = frozenset({"password", "changeme", "minioadmin", "postgres", "admin", "secret", "12345678", "pgadmin"})
CREDENTIAL_PAIRS = (
    ("POSTGRES_PASSWORD", "POSTGRES_USER"),
    ("PGADMIN_DEFAULT_PASSWORD", "PGADMIN_DEFAULT_EMAIL"),
    ("MINIO_ROOT_PASSWORD", "MINIO_ROOT_USER"),
    ("MLFLOW_ADMIN_PASSWORD", "MLFLOW_ADMIN_USER"),
)

# A release without a lock is one command away from usable.
LOCK_FIX = (
    "run `invoke lock` to resolve and write it (needs PyPI; commit the file), then `invoke up`; "
    "or set one of the locked versions"
)


@dataclass(frozen=True)
class Policy:
    """The two checks a course demo may relax; every task that starts or changes containers enforces them."""

    allow_weak_secrets: bool = False
    allow_unpinned: bool = False
    # MLflow logins on a release with published advisories; only MLFLOW_AUTH_ACCEPT_ADVISORIES relaxes it.
    refuse_advisories: bool = True


ENFORCED = Policy()
# For tasks that only look at, stop or remove what already runs: refusing to stop a stack
# because its password is weak would help nobody.
RELAXED = Policy(allow_weak_secrets=True, allow_unpinned=True, refuse_advisories=False)


def validate(
    values: Mapping[str, str],
    *,
    path: Path = Path(".env"),
    policy: Policy = ENFORCED,
    problems: list[Problem] | None = None,
) -> Settings:
    """Turn raw `.env` values into `Settings`, or raise one `SettingsError` naming every problem."""
    found = list(problems or [])
    for key, value in values.items():
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1, cutoff=0.6)
            fix = f"did you mean {close[0]}?" if close else "remove it (.env.example lists every key)"
            found.append(Problem(key, None, "unknown key", fix))
        elif "$" in value:
            found.append(
                Problem(
                    key, mask(key, value), "contains '$', which Docker Compose would expand", "choose one without '$'"
                )
            )
    for key in KEYS:
        if key not in values and key not in OPTIONAL_KEYS:
            fix = f"add {key}=... ({describe(key)}); see .env.example"
            if key in SECRET_KEYS:
                fix = "run `invoke init`: it adds a random one to your .env and changes nothing else"
            found.append(Problem(key, None, "missing", fix))

    found += _port_clashes(values)
    if not policy.allow_weak_secrets:
        found += _weak_secrets(values)
    known = {k: v for k, v in values.items() if k in KEYS and "$" not in v}
    try:
        settings = Settings.model_validate(known, context={"allow_unpinned": policy.allow_unpinned})
    except ValidationError as error:
        found += _problems_from(error, values)
        raise SettingsError(path, dedupe(found)) from None
    found += sharing_problems(settings) + tls_problems(settings)
    if policy.refuse_advisories:
        found += advisory_problems(settings)
    if found:
        raise SettingsError(path, dedupe(found))
    return settings


def load_settings(path: Path, policy: Policy = ENFORCED) -> Settings:
    """Read and validate `.env` at `path`."""
    values, problems = read_env_file(path)
    return validate(values, path=path, policy=policy, problems=problems)


def _problems_from(error: ValidationError, values: Mapping[str, str]) -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False):
        if item["type"] == "missing":
            continue  # reported by `validate` with a friendlier fix
        # Ports sit one level down: ("PORTS", "MLFLOW_PORT"); a check of several keys names its key by its type.
        key = "BACKUP_DEST" if item["type"] == BACKUP_DEST_MISSING else str(item["loc"][-1])
        fix = LOCK_FIX if item["type"] == NO_LOCK else describe(key)
        problems.append(Problem(key, mask(key, values.get(key, "")), _reason(item), fix))
    return problems


def _reason(item: Any) -> str:
    kind = item["type"]
    if kind in ("int_parsing", "int_type"):
        return "not a whole number"
    if kind in ("greater_than_equal", "less_than_equal"):
        return "out of range"
    if kind == "literal_error":
        return "not a known value"
    return str(item["msg"]).removeprefix("Value error, ")


def _port_clashes(values: Mapping[str, str]) -> list[Problem]:
    owner: dict[str, str] = {}
    problems = []
    for key in PORT_KEYS:
        port = values.get(key, "").strip()
        if not port.isdigit():
            continue  # reported as a bad value by the field check
        if port in owner:
            problems.append(
                Problem(key, repr(port), f"{owner[port]} uses port {port} too", "give every service its own host port")
            )
        else:
            owner[port] = key
    return problems


def _is_weak(secret: str, user: str) -> bool:
    lowered = secret.lower()
    names = {user.lower(), user.split("@")[0].lower()} - {""}
    # The placeholders of .env.example are public, so they count as weak too.
    placeholder = re.sub(r"[^a-z0-9]", "", lowered).startswith("changeme")
    return lowered in WEAK_SECRETS or lowered in names or placeholder


def _weak_secrets(values: Mapping[str, str]) -> list[Problem]:
    problems = []
    users = dict(CREDENTIAL_PAIRS)
    for secret_key in sorted(SECRET_KEYS):  # a secret without a user (a signing key) is weak when well known
        secret = values.get(secret_key, "")
        if secret and _is_weak(secret, values.get(users.get(secret_key, ""), "")):
            problems.append(
                Problem(
                    secret_key,
                    mask(secret_key, secret),
                    "a well-known weak password, or the same as the user name",
                    "choose a strong one (`invoke init --force` writes new ones), or pass --allow-weak-secrets",
                )
            )
    return problems


def sharing_problems(settings: Settings) -> list[Problem]:
    """MLflow beyond this machine needs logins; logins need their secrets."""
    problems = []
    if not settings.mlflow_auth and not settings.mlflow_is_private:
        problems.append(
            Problem(
                "BIND_ADDRESS",
                repr(settings.bind_address),
                "publishes MLflow beyond this machine without logins: anyone could delete every experiment",
                "set MLFLOW_AUTH=true with MLFLOW_ADMIN_PASSWORD and MLFLOW_FLASK_SERVER_SECRET_KEY "
                "(`invoke init` writes them into a new .env), or BIND_ADDRESS=127.0.0.1",
            )
        )
    if settings.mlflow_auth:
        for key, minimum in (
            ("MLFLOW_ADMIN_PASSWORD", MLFLOW_ADMIN_MIN_PASSWORD),
            ("MLFLOW_FLASK_SERVER_SECRET_KEY", MLFLOW_SECRET_KEY_MIN),
        ):
            secret = getattr(settings, key.lower()).get_secret_value()
            if len(secret) < minimum:
                problems.append(
                    Problem(
                        key,
                        mask(key, secret),
                        f"MLFLOW_AUTH=true needs it, at least {minimum} characters",
                        "set it to a long random text (`invoke init` generates one in a new .env)",
                    )
                )
    return problems


def advisory_problems(settings: Settings) -> list[Problem]:
    """MLflow's logins on a release with published advisories against them, unless `.env` accepts each one.

    A deploy always has logins, so this refuses it too. Accepting is for starting an old stack once
    to move it to a fixed release (`invoke up` upgrades the data, with a backup first).
    """
    found = advisories.mlflow_auth(settings.mlflow_version) if settings.mlflow_auth else []
    missing = [advisory for advisory in found if advisory.id not in advisories.accepted(
        settings.mlflow_auth_accept_advisories)]  # fmt: skip
    if not missing:
        return []
    named = ", ".join(f"{advisory.id} ({advisory.severity}, fixed in {advisory.fixed_in})" for advisory in missing)
    newest = supported_mlflow_versions()[-1]
    return [
        Problem(
            "MLFLOW_VERSION",
            repr(settings.mlflow_version),
            f"MLFLOW_AUTH=true on MLflow {settings.mlflow_version}, whose logins have published advisories: {named}",
            f"set MLFLOW_VERSION={newest} (`invoke up` upgrades the data, with a backup first); only to start "
            "this stack once to move it forward, accept them in .env: "
            f"MLFLOW_AUTH_ACCEPT_ADVISORIES={','.join(advisory.id for advisory in found)}",
        )
    ]
