"""One typed settings object, read once from `.env` and validated in one place.

The `.env` file is parsed with python-dotenv without touching `os.environ`. Every
problem is collected (not just the first), reported with its key, the offending value
(masked when it is a secret) and what would fix it, and nothing else runs until the
file is clean.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from dotenv.parser import parse_stream
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from trackstack.errors import TrackstackError
from trackstack.paths import constraints_file, supported_mlflow_versions

Port = Annotated[int, Field(ge=1, le=65535, strict=False)]

# Values that the upstream images accept but that nobody should run with.
WEAK_SECRETS = frozenset({"password", "changeme", "minioadmin", "postgres", "admin", "secret", "12345678", "pgadmin"})

_PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_PG_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# S3 bucket naming rules (AWS "General purpose bucket naming rules").
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# pgAdmin validates the login with email_validator; this catches what users get wrong.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_PINNED_REF = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9._/:-]*?)"  # registry/repository (a registry may carry a :port)
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@sha256:[0-9a-f]{64})?$"
)


class Settings(BaseModel):
    """Everything trackstack knows about one stack, from `.env`."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=False)

    compose_project_name: str = Field(
        alias="COMPOSE_PROJECT_NAME",
        description="lower-case letters, digits, '-' or '_', e.g. trackstack",
    )
    bind_address: str = Field(
        alias="BIND_ADDRESS",
        description="the host address the ports are published on: 127.0.0.1 (this machine only) or 0.0.0.0",
    )
    restart_policy: Literal["always", "unless-stopped", "no", "on-failure"] = Field(
        alias="RESTART_POLICY", description="one of always, unless-stopped, on-failure, no"
    )

    mlflow_port: Port = Field(alias="MLFLOW_PORT", description="a free TCP port 1-65535 (course: 5001)")
    pgadmin_port: Port = Field(alias="PGADMIN_PORT", description="a free TCP port 1-65535 (course: 5051)")
    minio_api_port: Port = Field(alias="MINIO_API_PORT", description="a free TCP port 1-65535 (course: 9000)")
    minio_console_port: Port = Field(alias="MINIO_CONSOLE_PORT", description="a free TCP port 1-65535 (course: 9001)")
    postgres_port: Port = Field(alias="POSTGRES_PORT", description="a free TCP port 1-65535 (course: 5432)")

    postgres_user: str = Field(
        alias="POSTGRES_USER", description="letters, digits and '_', starting with a letter, e.g. mlflow"
    )
    postgres_password: SecretStr = Field(
        alias="POSTGRES_PASSWORD", description="a non-empty password; `invoke init` generates one"
    )
    postgres_db: str = Field(alias="POSTGRES_DB", description="MLflow's database: letters, digits and '_', e.g. mlflow")
    pgadmin_default_email: str = Field(
        alias="PGADMIN_DEFAULT_EMAIL",
        description="a valid e-mail address that pgAdmin accepts, e.g. admin@example.com",
    )
    pgadmin_default_password: SecretStr = Field(
        alias="PGADMIN_DEFAULT_PASSWORD", description="a non-empty password; `invoke init` generates one"
    )
    minio_root_user: str = Field(alias="MINIO_ROOT_USER", description="at least 3 characters, e.g. trackstack")
    minio_root_password: SecretStr = Field(
        alias="MINIO_ROOT_PASSWORD", description="at least 8 characters; `invoke init` generates one"
    )
    mlflow_bucket: str = Field(
        alias="MLFLOW_BUCKET",
        description="an S3 bucket name: 3-63 lower-case letters, digits, '.' or '-', e.g. mlflow",
    )

    postgres_image: str = Field(alias="POSTGRES_IMAGE", description="a pinned image, e.g. postgres:17-trixie")
    minio_image: str = Field(
        alias="MINIO_IMAGE", description="a pinned image, e.g. quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"
    )
    pgadmin_image: str = Field(alias="PGADMIN_IMAGE", description="a pinned image, e.g. dpage/pgadmin4:9.10")
    mlflow_base_image: str = Field(
        alias="MLFLOW_BASE_IMAGE", description="a pinned Python image, e.g. python:3.13-slim-trixie"
    )
    mlflow_version: str = Field(
        alias="MLFLOW_VERSION", description="an exact MLflow release (3.5 or later), e.g. 3.8.1"
    )
    mlflow_workers: int = Field(
        alias="MLFLOW_WORKERS", ge=1, le=16, description="uvicorn worker processes, 1-16 (e.g. 2)"
    )

    # -- field checks -------------------------------------------------------------
    @field_validator("compose_project_name")
    @classmethod
    def _project_name(cls, value: str) -> str:
        if not _PROJECT_NAME.fullmatch(value):
            raise ValueError("not a valid Compose project name")
        return value

    @field_validator("bind_address")
    @classmethod
    def _bind_address(cls, value: str) -> str:
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise ValueError("not an IPv4 address") from None
        return value

    @field_validator("postgres_user", "postgres_db")
    @classmethod
    def _pg_identifier(cls, value: str) -> str:
        if not _PG_IDENTIFIER.fullmatch(value):
            raise ValueError("not a plain PostgreSQL name")
        return value

    @field_validator("pgadmin_default_email")
    @classmethod
    def _email(cls, value: str) -> str:
        if not _EMAIL.fullmatch(value):
            raise ValueError("not an e-mail address pgAdmin accepts")
        domain = value.rsplit("@", 1)[1].lower()
        if domain == "localhost" or domain.endswith((".local", ".localhost")):
            raise ValueError("pgAdmin refuses .local and localhost e-mail domains")
        return value

    @field_validator("minio_root_user")
    @classmethod
    def _minio_user(cls, value: str) -> str:
        if len(value) < 3:
            raise ValueError("MinIO needs at least 3 characters")
        return value

    @field_validator("postgres_password", "pgadmin_default_password")
    @classmethod
    def _non_empty_secret(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            raise ValueError("the image refuses to start with an empty password")
        return value

    @field_validator("minio_root_password")
    @classmethod
    def _minio_secret(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 8:
            raise ValueError("MinIO needs at least 8 characters")
        return value

    @field_validator("mlflow_bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not _BUCKET.fullmatch(value) or ".." in value or value.startswith("xn--") or _looks_like_ip(value):
            raise ValueError("not a valid S3 bucket name")
        return value

    @field_validator("postgres_image", "minio_image", "pgadmin_image", "mlflow_base_image")
    @classmethod
    def _image(cls, value: str, info: ValidationInfo) -> str:
        match = _PINNED_REF.fullmatch(value)
        if not match:
            raise ValueError("not an image reference")
        allow_unpinned = bool(info.context and info.context.get("allow_unpinned"))
        pinned = "@sha256:" in value or (match["tag"] not in (None, "latest"))
        if not pinned and not allow_unpinned:
            raise ValueError("image is not pinned to a tag (or uses 'latest'); pass --allow-unpinned to accept")
        return value

    @field_validator("mlflow_version")
    @classmethod
    def _mlflow_version(cls, value: str) -> str:
        match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", value)
        if not match:
            raise ValueError("not an exact release number")
        if (int(match[1]), int(match[2])) < (3, 5):
            raise ValueError("MLflow before 3.5 has no --allowed-hosts")
        if not constraints_file(value).is_file():
            supported = ", ".join(supported_mlflow_versions())
            raise ValueError(f"no dependency lock {constraints_file(value).name} for it (locked: {supported})")
        return value

    # -- derived values -------------------------------------------------------------
    def published_ports(self) -> dict[str, int]:
        """Host ports by `.env` key, in the order users meet them."""
        return {
            "MLFLOW_PORT": self.mlflow_port,
            "PGADMIN_PORT": self.pgadmin_port,
            "MINIO_API_PORT": self.minio_api_port,
            "MINIO_CONSOLE_PORT": self.minio_console_port,
            "POSTGRES_PORT": self.postgres_port,
        }

    @property
    def host(self) -> str:
        """Where this machine reaches the published ports."""
        return "127.0.0.1" if self.bind_address == "0.0.0.0" else self.bind_address  # noqa: S104

    @property
    def mlflow_image(self) -> str:
        return f"{self.compose_project_name}-mlflow:{self.mlflow_version}"

    @property
    def mlflow_url(self) -> str:
        return f"http://{self.host}:{self.mlflow_port}"

    @property
    def pgadmin_url(self) -> str:
        return f"http://{self.host}:{self.pgadmin_port}"

    @property
    def minio_api_url(self) -> str:
        return f"http://{self.host}:{self.minio_api_port}"

    @property
    def minio_console_url(self) -> str:
        return f"http://{self.host}:{self.minio_console_port}"

    def secret_values(self) -> list[str]:
        """Every secret, so that output and generated files can be checked against them."""
        return [
            s.get_secret_value()
            for s in (self.postgres_password, self.pgadmin_default_password, self.minio_root_password)
        ]


SECRET_KEYS = frozenset(str(field.alias) for field in Settings.model_fields.values() if field.annotation is SecretStr)
KEYS: tuple[str, ...] = tuple(str(field.alias) for field in Settings.model_fields.values())
_FIELD_BY_NAME = {name: field for name, field in Settings.model_fields.items()}
PORT_KEYS = ("MLFLOW_PORT", "PGADMIN_PORT", "MINIO_API_PORT", "MINIO_CONSOLE_PORT", "POSTGRES_PORT")
CREDENTIAL_PAIRS = (
    ("POSTGRES_PASSWORD", "POSTGRES_USER"),
    ("PGADMIN_DEFAULT_PASSWORD", "PGADMIN_DEFAULT_EMAIL"),
    ("MINIO_ROOT_PASSWORD", "MINIO_ROOT_USER"),
)


def _looks_like_ip(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


def _is_weak(secret: str, user: str) -> bool:
    lowered = secret.lower()
    names = {user.lower(), user.split("@")[0].lower()} - {""}
    # The placeholders of .env.example are public, so they count as weak too.
    placeholder = re.sub(r"[^a-z0-9]", "", lowered).startswith("changeme")
    return lowered in WEAK_SECRETS or lowered in names or placeholder


@dataclass(frozen=True)
class Problem:
    """One thing wrong with `.env`, phrased for the person who has to fix it."""

    key: str
    value: str | None
    reason: str
    fix: str

    def __str__(self) -> str:
        shown = f"{self.key}={self.value}" if self.value is not None else self.key
        return f"{shown}: {self.reason}. Fix: {self.fix}."


class SettingsError(TrackstackError):
    """`.env` is unusable; carries every problem found."""

    def __init__(self, path: Path, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
        lines = [f"{path} has {count}; nothing was changed:"]
        lines += [f"  - {problem}" for problem in problems]
        super().__init__("\n".join(lines))


def mask(key: str, value: str) -> str:
    """Show a value in an error message, hiding secrets but keeping a hint of their shape."""
    if key in SECRET_KEYS:
        return f"<hidden, {len(value)} characters>"
    return repr(value)


def read_env_file(path: Path) -> tuple[dict[str, str], list[Problem]]:
    """Parse `.env` without interpolation or `os.environ` changes; report unparsable lines."""
    if not path.is_file():
        raise SettingsError(
            path,
            [Problem(str(path.name), None, "file not found", "run `invoke init` to create it from .env.example")],
        )
    values: dict[str, str] = {}
    problems: list[Problem] = []
    with path.open(encoding="utf-8") as stream:
        for binding in parse_stream(stream):
            line_no = binding.original.line
            if binding.error:
                text = binding.original.string.strip()
                problems.append(
                    Problem(
                        f"line {line_no}",
                        None,
                        f"cannot be parsed ({text[:40]!r})",
                        "write it as KEY=value, or start it with # to make it a comment",
                    )
                )
                continue
            if binding.key is None:
                continue  # blank line or comment
            if binding.value is None:
                problems.append(Problem(binding.key, None, f"has no '=' (line {line_no})", "write it as KEY=value"))
                continue
            if binding.key in values:
                problems.append(
                    Problem(binding.key, None, f"is set twice (again on line {line_no})", "keep one of the lines")
                )
            values[binding.key] = binding.value
    return values, problems


def validate(
    values: Mapping[str, str],
    *,
    path: Path = Path(".env"),
    allow_weak_secrets: bool = False,
    allow_unpinned: bool = False,
    problems: list[Problem] | None = None,
) -> Settings:
    """Turn raw `.env` values into `Settings`, or raise one `SettingsError` naming every problem."""
    found = list(problems or [])
    for key, value in values.items():
        if key not in KEYS:
            close = difflib.get_close_matches(key, KEYS, n=1, cutoff=0.6)
            fix = f"did you mean {close[0]}?" if close else "remove it (.env.example lists every key)"
            found.append(Problem(key, None, "unknown key", fix.rstrip("?") if not close else fix))
        elif "$" in value:
            found.append(
                Problem(
                    key,
                    mask(key, value),
                    "contains '$', which Docker Compose would expand",
                    "choose a value without '$'",
                )
            )
    for key in KEYS:
        if key not in values:
            found.append(Problem(key, None, "missing", f"add {key}=... ({_describe(key)}); see .env.example"))

    found += _port_clashes(values)
    if not allow_weak_secrets:
        found += _weak_secrets(values)
    known = {k: v for k, v in values.items() if k in KEYS and "$" not in v}
    try:
        settings = Settings.model_validate(known, context={"allow_unpinned": allow_unpinned})
    except ValidationError as error:
        found += _problems_from(error, values)
        raise SettingsError(path, _dedupe(found)) from None
    if found:
        raise SettingsError(path, _dedupe(found))
    return settings


def load_settings(path: Path, *, allow_weak_secrets: bool = False, allow_unpinned: bool = False) -> Settings:
    """Read and validate `.env` at `path`."""
    values, problems = read_env_file(path)
    return validate(
        values,
        path=path,
        allow_weak_secrets=allow_weak_secrets,
        allow_unpinned=allow_unpinned,
        problems=problems,
    )


def _describe(key: str) -> str:
    for name, field in _FIELD_BY_NAME.items():
        if field.alias == key:
            return field.description or name
    return key


def _problems_from(error: ValidationError, values: Mapping[str, str]) -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False):
        loc = item["loc"]
        key = str(loc[0])
        if item["type"] == "missing":
            continue  # reported above with a friendlier fix
        raw = values.get(key, "")
        reason = _reason(item)
        problems.append(Problem(key, mask(key, raw), reason, _describe(key)))
    return problems


def _reason(item: Any) -> str:
    kind = item["type"]
    if kind in ("int_parsing", "int_type"):
        return "not a whole number"
    if kind in ("greater_than_equal", "less_than_equal"):
        return "out of range"
    if kind == "literal_error":
        return "not a known value"
    message = str(item["msg"])
    return message.removeprefix("Value error, ")


def _port_clashes(values: Mapping[str, str]) -> list[Problem]:
    owner: dict[str, str] = {}
    problems = []
    for key in PORT_KEYS:
        port = values.get(key, "").strip()
        if not port.isdigit():
            continue  # reported as a bad value by the field check
        if port in owner:
            problems.append(
                Problem(
                    key,
                    repr(port),
                    f"{owner[port]} uses port {port} too",
                    "give every service its own host port",
                )
            )
        else:
            owner[port] = key
    return problems


def _weak_secrets(values: Mapping[str, str]) -> list[Problem]:
    problems = []
    for secret_key, user_key in CREDENTIAL_PAIRS:
        secret = values.get(secret_key, "")
        if secret and _is_weak(secret, values.get(user_key, "")):
            problems.append(
                Problem(
                    secret_key,
                    mask(secret_key, secret),
                    "a well-known weak password, or the same as the user name",
                    "choose a strong one (`invoke init --force` writes new ones), or pass --allow-weak-secrets",
                )
            )
    return problems


def _dedupe(problems: list[Problem]) -> list[Problem]:
    seen: set[tuple[str, str]] = set()
    unique = []
    for problem in problems:
        marker = (problem.key, problem.reason)
        if marker not in seen:
            seen.add(marker)
            unique.append(problem)
    return unique
