"""The settings model: one typed, frozen object for everything `.env` says about a stack.

Each field's `.env` key is its name in upper case; the published ports come from the
service table. Reading the file is `envfile.py`'s job, collecting and wording problems
`validation.py`'s.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from trackstack import schedule
from trackstack.advisories import KNOWN_MLFLOW_IDS, accepted
from trackstack.backup_dest import destination_problem
from trackstack.paths import constraints_file, supported_mlflow_versions
from trackstack.services import ENDPOINT_OF_PORT, PORT_KEYS, PROXY, SERVICE_OF_PORT, STORES, Service, stack

Port = Annotated[int, Field(ge=1, le=65535, strict=False)]

_PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_PG_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# S3 bucket naming rules (AWS "General purpose bucket naming rules").
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# pgAdmin validates the login with email_validator. This is the plain address everybody uses:
# no quotes, spaces, braces or other characters that mean something in the files it goes into.
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}$")
# MinIO's root user is the S3 access key: it goes into request signatures and plain config.
_ACCESS_KEY = re.compile(r"^[A-Za-z0-9._@+-]+$")
# A kubeconfig context: cloud tools name them with ':', '/', '@' (arn:aws:eks:...:cluster/name).
_KUBE_CONTEXT = re.compile(r"^[A-Za-z0-9._:/@+=-]*$")
_PINNED_REF = re.compile(
    r"^(?P<name>[a-z0-9][a-z0-9._/:-]*?)"  # registry/repository (a registry may carry a :port)
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?"
    r"(?:@sha256:[0-9a-f]{64})?$"
)

# An image repository without tag or digest; a registry host may carry a :port.
_PATH_PART = r"[a-z0-9]+(?:[._-][a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^(?:[A-Za-z0-9.-]+(?::[0-9]{{1,5}})?/)?{_PATH_PART}(?:/{_PATH_PART})*$")
# The error of a BACKUP_SCHEDULE without a BACKUP_DEST (a model check: validation.py names the key).
BACKUP_DEST_MISSING = "backup_dest_missing"
# The error type of an MLFLOW_VERSION without a lock: its fix is a command (validation.py).
NO_LOCK = "no_lock"
# Below this pgAdmin's own password check refuses the login at first start.
PGADMIN_MIN_PASSWORD = 6
# A host name (or IPv4 address) a class reaches MLflow by; `*.` matches any subdomain.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_PUBLIC_HOST = re.compile(rf"^(?:\*\.)?{_LABEL}(?:\.{_LABEL})*$")
# A Kubernetes namespace or object name (RFC 1123 label).
_KUBE_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# A Kubernetes object name (RFC 1123 subdomain): Secrets, cert-manager issuers.
_KUBE_OBJECT = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?$")
# A volume's size: a Kubernetes quantity above zero with a unit (a bare number would be bytes).
_STORAGE = re.compile(r"^(?=[0-9.]*[1-9])[0-9]+(?:\.[0-9]+)?(?:[KMGTPE]i|[kMGTPE])$")
_QUANTITY_HINT = "a Kubernetes quantity with a unit, e.g. 10Gi or 500Mi (Ki, Mi, Gi, Ti, or k, M, G, T)"
# Fields that are names: the pattern each must match, and what it is not when it does not.
_NAME_RULES: dict[str, tuple[re.Pattern[str], str]] = {
    "compose_project_name": (_PROJECT_NAME, "not a valid Compose project name"),
    "postgres_user": (_PG_IDENTIFIER, "not a plain PostgreSQL name"),
    "postgres_db": (_PG_IDENTIFIER, "not a plain PostgreSQL name"),
    "mlflow_admin_user": (re.compile(r"^[A-Za-z0-9_.@-]{1,64}$"), "not a plain login name"),
}
# MLflow's own permission names (mlflow.server.auth.permissions).
Permission = Literal["READ", "EDIT", "MANAGE", "NO_PERMISSIONS"]
MLFLOW_ADMIN_MIN_PASSWORD = 12
MLFLOW_SECRET_KEY_MIN = 16


class Settings(BaseModel):
    """Everything trackstack knows about one stack, from `.env`."""

    model_config = ConfigDict(frozen=True, extra="forbid", alias_generator=str.upper, populate_by_name=False)

    compose_project_name: str = Field(description="lower-case letters, digits, '-' or '_', e.g. trackstack")
    bind_address: str = Field(
        description="the host address the ports are published on: 127.0.0.1 (this machine only) or 0.0.0.0"
    )
    restart_policy: Literal["always", "unless-stopped", "no", "on-failure"] = Field(
        description="one of always, unless-stopped, on-failure, no"
    )
    # Host ports by `.env` key (MLFLOW_PORT, ...): one per endpoint of the service table.
    ports: dict[str, Port] = Field(description="host ports")

    postgres_user: str = Field(description="letters, digits and '_', starting with a letter, e.g. mlflow")
    postgres_password: SecretStr = Field(description="a non-empty password; `invoke init` generates one")
    postgres_db: str = Field(description="MLflow's database: letters, digits and '_', e.g. mlflow")
    pgadmin_default_email: str = Field(
        description="a valid e-mail address that pgAdmin accepts, e.g. admin@example.com"
    )
    pgadmin_default_password: SecretStr = Field(
        description=f"at least {PGADMIN_MIN_PASSWORD} characters; `invoke init` generates one"
    )
    # Optional, as SEAWEEDFS_IMAGE: a `.env` from before they existed keeps MinIO.
    artifact_store: Literal["minio", "seaweedfs"] = Field(
        default="minio", description="minio (the course's) or seaweedfs: the S3 store of MLflow's artifacts"
    )
    minio_root_user: str = Field(description="at least 3 letters, digits or '.', '_', '@', '+', '-', e.g. trackstack")
    minio_root_password: SecretStr = Field(description="at least 8 characters; `invoke init` generates one")
    mlflow_bucket: str = Field(
        description="an S3 bucket name: 3-63 lower-case letters, digits, '.' or '-', e.g. mlflow"
    )

    postgres_image: str = Field(description="a pinned image, e.g. postgres:17-trixie")
    minio_image: str = Field(description="a pinned image, e.g. quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z")
    seaweedfs_image: str = Field(
        default="chrislusf/seaweedfs:4.53", description="a pinned image, e.g. chrislusf/seaweedfs:4.53"
    )
    pgadmin_image: str = Field(description="a pinned image, e.g. dpage/pgadmin4:9.18")
    mlflow_base_image: str = Field(description="a pinned Python image, e.g. python:3.13-slim-trixie")
    mlflow_version: str = Field(description="an exact MLflow release, 3.5 or later, e.g. 3.18.0")
    mlflow_workers: int = Field(ge=1, le=16, description="uvicorn worker processes, 1-16 (e.g. 2)")
    # Optional: a `.env` from before it existed keeps working.
    mlflow_job_execution: bool = Field(
        default=False, description="true or false: MLflow runs its background jobs (GenAI scorers, prompt optimization)"
    )

    # Sharing with a class. Optional keys: a `.env` from before they existed keeps working.
    mlflow_public_hosts: str = Field(
        default="",
        description="comma-separated host names or addresses students reach MLflow by, e.g. mlflow.school.example",
    )
    pgadmin_bind_address: str = Field(default="127.0.0.1", description="127.0.0.1, or 0.0.0.0 to publish pgAdmin")
    minio_bind_address: str = Field(default="127.0.0.1", description="127.0.0.1, or 0.0.0.0 to publish MinIO")
    postgres_bind_address: str = Field(default="127.0.0.1", description="127.0.0.1, or 0.0.0.0 to publish Postgres")
    mlflow_auth: bool = Field(default=False, description="true or false: MLflow asks for a login")
    mlflow_admin_user: str = Field(default="admin", description="MLflow's admin login, e.g. admin")
    mlflow_admin_password: SecretStr = Field(
        default=SecretStr(""),
        description=f"at least {MLFLOW_ADMIN_MIN_PASSWORD} characters; `invoke init` generates one",
    )
    mlflow_flask_server_secret_key: SecretStr = Field(
        default=SecretStr(""),
        description=f"a random text of at least {MLFLOW_SECRET_KEY_MIN} characters; `invoke init` generates one",
    )
    mlflow_default_permission: Permission = Field(
        default="READ",
        description="what every login may do with others' experiments: READ, EDIT, MANAGE or NO_PERMISSIONS",
    )

    # A shared server on Docker Swarm (`invoke deploy`); compose ignores these.
    mlflow_replicas: int = Field(default=2, ge=1, le=16, description="MLflow server tasks on the swarm, 1-16 (e.g. 2)")
    proxy_image: str = Field(default="caddy:2.11.9", description="a pinned Caddy image, e.g. caddy:2.11.9")
    swarm_overlay_encrypted: bool = Field(
        default=True,
        description="true or false: the stack's overlay network is encrypted (IPsec between nodes; needs ESP in "
        "every node's kernel)",
    )
    mlflow_image_repository: str = Field(
        default="",
        description="the registry repository `invoke deploy` pushes the MLflow image to, without a tag, "
        "e.g. registry.school.example:5000/trackstack-mlflow",
    )

    # Where `invoke deploy` goes: Docker Swarm (DOCKER_HOST or the Docker context), or a Kubernetes
    # cluster (a context of kubectl's kubeconfig: KUBECONFIG or ~/.kube/config). Compose ignores these.
    deploy_target: Literal["swarm", "kubernetes"] = Field(default="swarm", description="swarm or kubernetes")
    mlflow_image_push: bool = Field(
        default=True,
        description="true or false: `invoke deploy` pushes the MLflow image (false when the nodes already have it)",
    )
    kube_context: str = Field(
        default="",
        description="a context of your kubeconfig (`kubectl config get-contexts`: letters, digits and "
        "'.', '_', ':', '/', '@', '+', '=', '-'); empty: the current one",
    )
    kube_namespace: str = Field(
        default="",
        description="a Kubernetes namespace: lower-case letters, digits and '-', at most 63; "
        "empty: COMPOSE_PROJECT_NAME",
    )
    kube_storage_class: str = Field(
        default="", description="the StorageClass of the volumes' claims; empty: the cluster's default"
    )
    kube_postgres_storage: str = Field(default="10Gi", description=f"Postgres's volume: {_QUANTITY_HINT}")
    kube_minio_storage: str = Field(default="50Gi", description=f"MinIO's volume (the artifacts): {_QUANTITY_HINT}")
    kube_pgadmin_storage: str = Field(default="1Gi", description=f"pgAdmin's volume: {_QUANTITY_HINT}")
    kube_mlflow_service: Literal["ClusterIP", "NodePort", "LoadBalancer"] = Field(
        default="ClusterIP",
        description="ClusterIP, NodePort (on MLFLOW_PORT, 30000-32767) or LoadBalancer (on MLFLOW_PORT)",
    )
    kube_ingress_host: str = Field(
        default="", description="a host name for an Ingress to MLflow, e.g. mlflow.school.example; empty: no Ingress"
    )
    kube_ingress_class: str = Field(
        default="", description="the IngressClass of that Ingress, e.g. nginx; empty: the cluster's default"
    )

    # Least privilege: MLflow's own Postgres role and S3 user (mlflow_db_user, mlflow_s3_access_key), not
    # the superuser and root keys, which only trackstack's own steps use (docs/configuration.md).
    mlflow_db_password: SecretStr = Field(
        description="MLflow's own Postgres password (at least 8 characters); `invoke init` generates one"
    )
    mlflow_s3_secret_key: SecretStr = Field(
        description="the secret key of MLflow's S3 user (at least 8 characters); `invoke init` generates one"
    )

    # Published advisories (advisories.py). Optional: empty accepts none.
    mlflow_auth_accept_advisories: str = Field(
        default="",
        description="the advisories against MLflow's logins you accept to start an older MLFLOW_VERSION only to move "
        f"it forward, comma-separated (known: {', '.join(KNOWN_MLFLOW_IDS)}); empty: none",
    )
    # TLS wherever a login crosses a network (Swarm, Kubernetes, Compose in LAN mode). Default: a CA
    # of trackstack's own, name-constrained to this server's names (certificates.py).
    tls_cert_file: str = Field(
        default="",
        description="the server's certificate (PEM, chain after it), e.g. certs/mlflow.crt; empty: trackstack's own",
    )
    tls_key_file: str = Field(
        default="", description="that certificate's private key (PEM, unencrypted), e.g. certs/mlflow.key"
    )
    tls_acme_email: str = Field(
        default="",
        description="an e-mail address for Let's Encrypt (ACME): Caddy gets a public certificate; empty: off",
    )
    tls_terminated_in_front: bool = Field(
        default=False,
        description="true or false: something in front of MLflow's NodePort or LoadBalancer terminates TLS",
    )
    kube_ingress_tls_secret: str = Field(
        default="", description="a TLS Secret in the namespace for the Ingress, e.g. mlflow-tls; empty: trackstack's"
    )
    kube_ingress_cert_issuer: str = Field(
        default="", description="a cert-manager ClusterIssuer that signs the Ingress's certificate, e.g. letsencrypt"
    )

    # Scheduled backups, run by the orchestrator (docs/backups.md); empty BACKUP_SCHEDULE: none.
    backup_schedule: str = Field(
        default="", description="a 5-field cron expression (UTC), e.g. 0 3 * * *; empty: no scheduled backups"
    )
    backup_keep: int = Field(default=7, ge=1, description="how many verified backups to keep, at least 1 (e.g. 7)")
    backup_dest: str = Field(
        default="",
        description="s3://bucket/prefix or an absolute directory path; required when BACKUP_SCHEDULE is set",
    )
    backup_s3_endpoint: str = Field(
        default="", description="the S3 endpoint URL, e.g. https://s3.school.example; empty: AWS"
    )
    backup_s3_access_key: str = Field(default="", description="the access key of BACKUP_DEST's bucket")
    backup_s3_secret_key: SecretStr = Field(default=SecretStr(""), description="the secret key of BACKUP_DEST's bucket")
    backup_s3_region: str = Field(default="us-east-1", description="the bucket's region, e.g. us-east-1")

    # Deleted runs reclaimed on a schedule: `mlflow gc` run by the orchestrator (docs/running-a-class.md).
    mlflow_gc_schedule: str = Field(
        default="", description="a 5-field cron expression (UTC), e.g. 30 4 * * *; empty: no scheduled mlflow gc"
    )
    mlflow_gc_older_than: str = Field(
        default="7d",
        description="how long a deleted run stays restorable before gc removes it: days, hours, minutes, seconds "
        "in that order, e.g. 7d, 12h, 1d12h or 0s",
    )

    @model_validator(mode="before")
    @classmethod
    def _gather_ports(cls, data: object) -> object:
        """`.env` is flat: collect its port keys into `ports`."""
        if isinstance(data, dict):
            data = dict(data)
            data["PORTS"] = {key: data.pop(key) for key in PORT_KEYS if key in data}
        return data

    # -- field checks -------------------------------------------------------------
    @field_validator("*", mode="before")
    @classmethod
    def _printable(cls, value: object) -> object:
        """No value holds a line break or another character that is not printable (U+2028 and
        U+0085 split lines too): it would break the `.env` line, the generated files and the
        secret files that the images' `*_FILE` variables read."""
        if isinstance(value, str) and not value.isprintable():
            raise ValueError("contains a control character (a line break, a tab?) or another invisible character")
        return value

    @field_validator(*_NAME_RULES)
    @classmethod
    def _name(cls, value: str, info: ValidationInfo) -> str:
        pattern, reason = _NAME_RULES[str(info.field_name)]
        if not pattern.fullmatch(value):
            raise ValueError(reason)
        return value

    @field_validator("bind_address", "pgadmin_bind_address", "minio_bind_address", "postgres_bind_address")
    @classmethod
    def _bind_address(cls, value: str) -> str:
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            raise ValueError("not an IPv4 address") from None
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
        if not _ACCESS_KEY.fullmatch(value):
            raise ValueError("not a plain access key (letters, digits and . _ @ + - only)")
        return value

    @field_validator(
        "postgres_password",
        "pgadmin_default_password",
        "minio_root_password",
        "mlflow_db_password",
        "mlflow_s3_secret_key",
    )
    @classmethod
    def _secret(cls, value: SecretStr, info: ValidationInfo) -> SecretStr:
        secret = value.get_secret_value()
        minimum = {
            "pgadmin_default_password": PGADMIN_MIN_PASSWORD,
            "minio_root_password": 8,
            "mlflow_db_password": 8,
            "mlflow_s3_secret_key": 8,
        }.get(str(info.field_name), 1)
        if not secret:
            raise ValueError("the image refuses to start with an empty password")
        if len(secret) < minimum:
            raise ValueError(f"the image needs at least {minimum} characters")
        return value

    @field_validator("mlflow_public_hosts")
    @classmethod
    def _public_hosts(cls, value: str) -> str:
        bad = [name for name in _split(value) if not _PUBLIC_HOST.fullmatch(name)]
        if bad or (value.strip() and not _split(value)):
            raise ValueError(f"not a host name: {', '.join(repr(name) for name in bad) or repr(value)}")
        return value

    @field_validator("mlflow_image_repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        if value and not _REPOSITORY.fullmatch(value):
            raise ValueError("not a repository name without a tag (registry host[:port]/path)")
        return value

    @field_validator("kube_namespace", "kube_storage_class", "kube_ingress_class")
    @classmethod
    def _kube_name(cls, value: str) -> str:
        if value and not _KUBE_LABEL.fullmatch(value):
            raise ValueError("not a Kubernetes name: at most 63 lower-case letters, digits and '-'")
        return value

    @field_validator("kube_postgres_storage", "kube_minio_storage", "kube_pgadmin_storage")
    @classmethod
    def _storage(cls, value: str) -> str:
        if not _STORAGE.fullmatch(value):
            raise ValueError("not a storage size")
        return value

    @field_validator("kube_context")
    @classmethod
    def _kube_context(cls, value: str) -> str:
        if any(char.isspace() for char in value):
            raise ValueError("contains white space; copy the name from `kubectl config get-contexts`")
        if not _KUBE_CONTEXT.fullmatch(value):
            raise ValueError("holds a quote or another character trackstack does not pass on")
        return value

    @field_validator("kube_ingress_host")
    @classmethod
    def _ingress_host(cls, value: str) -> str:
        if value and (not _PUBLIC_HOST.fullmatch(value) or _looks_like_ip(value)):
            raise ValueError("not a host name (an Ingress takes names, not addresses)")
        return value

    @field_validator("mlflow_auth_accept_advisories")
    @classmethod
    def _advisories(cls, value: str) -> str:
        unknown = [name for name in accepted(value) if name not in KNOWN_MLFLOW_IDS]
        if unknown:
            raise ValueError(f"not a known advisory against MLflow's logins: {', '.join(unknown)}")
        return value

    @field_validator("tls_acme_email")
    @classmethod
    def _acme_email(cls, value: str) -> str:
        if value and not _EMAIL.fullmatch(value):
            raise ValueError("not an e-mail address")
        return value

    @field_validator("kube_ingress_tls_secret", "kube_ingress_cert_issuer")
    @classmethod
    def _kube_object(cls, value: str) -> str:
        if value and not _KUBE_OBJECT.fullmatch(value):
            raise ValueError("not a Kubernetes object name: lower-case letters, digits, '-' and '.', at most 253")
        return value

    @field_validator("mlflow_bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not _BUCKET.fullmatch(value) or ".." in value or value.startswith("xn--") or _looks_like_ip(value):
            raise ValueError("not a valid S3 bucket name")
        return value

    @field_validator(
        "postgres_image", "minio_image", "seaweedfs_image", "pgadmin_image", "mlflow_base_image", "proxy_image"
    )
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
        problem = release_problem(value)
        if problem:
            raise ValueError(problem)
        if not constraints_file(value).is_file():
            raise PydanticCustomError(
                NO_LOCK,
                "no dependency lock constraints/{lock} for it (locked: {locked})",
                {"lock": constraints_file(value).name, "locked": ", ".join(supported_mlflow_versions()) or "none"},
            )
        return value

    @field_validator("backup_schedule")
    @classmethod
    def _backup_schedule(cls, value: str) -> str:
        problem = schedule.problem(value) if value.strip() else None
        if problem:
            raise ValueError(problem)
        return " ".join(value.split())

    @field_validator("backup_dest")
    @classmethod
    def _backup_dest(cls, value: str) -> str:
        problem = destination_problem(value) if value else None
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("backup_s3_endpoint")
    @classmethod
    def _backup_s3_endpoint(cls, value: str) -> str:
        if value and not re.fullmatch(r"https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?/?", value):
            raise ValueError("not an http(s) URL of a host (and port), e.g. https://s3.school.example")
        return value.rstrip("/")

    @field_validator("backup_s3_access_key")
    @classmethod
    def _backup_s3_access_key(cls, value: str) -> str:
        if value and not _ACCESS_KEY.fullmatch(value):
            raise ValueError("not a plain access key (letters, digits and . _ @ + - only)")
        return value

    @field_validator("backup_s3_region")
    @classmethod
    def _backup_s3_region(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z0-9-]{1,40}", value):
            raise ValueError("not a region name: lower-case letters, digits and '-', e.g. us-east-1")
        return value

    @field_validator("mlflow_gc_schedule")
    @classmethod
    def _gc_schedule(cls, value: str) -> str:
        problem = schedule.problem(value) if value.strip() else None
        if problem:
            raise ValueError(problem)
        return " ".join(value.split())

    @field_validator("mlflow_gc_older_than")
    @classmethod
    def _gc_older_than(cls, value: str) -> str:
        if schedule.duration(value) is None:
            raise ValueError("not a duration mlflow gc reads (days, hours, minutes, seconds in that order)")
        return value

    @model_validator(mode="after")
    def _backup_needs_dest(self) -> Settings:
        if self.backup_schedule and not self.backup_dest:
            raise PydanticCustomError(
                BACKUP_DEST_MISSING, "BACKUP_SCHEDULE is set: scheduled backups need a destination", {}
            )
        return self

    # -- derived values -------------------------------------------------------------
    @property
    def mlflow_is_private(self) -> bool:
        """MLflow answers only on this machine (a loopback address)."""
        return ipaddress.IPv4Address(self.bind_address).is_loopback

    @property
    def mlflow_behind_proxy(self) -> bool:
        """Compose in LAN mode: MLflow is reached through the TLS proxy only (https on MLFLOW_PORT)."""
        return not self.mlflow_is_private

    @property
    def public_hosts(self) -> list[str]:
        return _split(self.mlflow_public_hosts)

    @property
    def mlflow_auth_db(self) -> str:
        """The database of MLflow's logins and permissions, beside MLflow's own."""
        return f"{self.postgres_db[:58]}_auth"

    @property
    def mlflow_db_user(self) -> str:
        """MLflow's own Postgres role: it owns MLflow's two databases and nothing else."""
        return f"{self.postgres_user[:56]}_mlflow"

    @property
    def mlflow_databases(self) -> tuple[str, str]:
        """The databases MLflow's role owns: its runs and its logins (the latter once MLFLOW_AUTH=true made it)."""
        return (self.postgres_db, self.mlflow_auth_db)

    @property
    def mlflow_s3_access_key(self) -> str:
        """The access key of MLflow's S3 user: its bucket's objects and nothing else."""
        return f"{self.minio_root_user}-mlflow"

    @property
    def store(self) -> Service:
        """The artifact store's entry of the service table (ARTIFACT_STORE); its name is always `minio`."""
        return STORES[self.artifact_store]

    @property
    def services(self) -> tuple[Service, ...]:
        """The Compose stack's services, with its artifact store, in the order users meet them; in LAN
        mode the TLS proxy first, in front of MLflow."""
        return stack(self.artifact_store, proxy=self.mlflow_behind_proxy)

    def service(self, name: str) -> Service:
        return next(service for service in self.services if service.name == name)

    def image(self, service: Service) -> str:
        """The pinned image `service` runs (its image key's value)."""
        return str(getattr(self, str(service.image_key).lower()))

    def bind(self, service: str) -> str:
        """The host address `service` is published on: MLflow's is BIND_ADDRESS, each other's its own key."""
        return str(getattr(self, f"{service}_bind_address", self.bind_address))

    def published_ports(self) -> dict[str, int]:
        """Host ports by `.env` key, in the order of the service table."""
        return {key: self.ports[key] for key in PORT_KEYS}

    @property
    def host(self) -> str:
        """Where this machine reaches MLflow."""
        return _reachable(self.bind_address)

    def url(self, port_key: str) -> str:
        """The URL of the endpoint published on `.env` key `port_key`, as this machine reaches it."""
        endpoint = ENDPOINT_OF_PORT[port_key]
        address = f"{_reachable(self.bind(SERVICE_OF_PORT[port_key]))}:{self.ports[port_key]}"
        if endpoint.scheme == "postgresql":
            return f"postgresql://{self.postgres_user}@{address}/{self.postgres_db}"
        if port_key == PROXY.endpoints[0].port_key and self.mlflow_behind_proxy:
            return f"{PROXY.endpoints[0].scheme}://{address}"
        return f"{endpoint.scheme}://{address}"

    @property
    def mlflow_url(self) -> str:
        """The tracking URI clients use (the one URL that code and tests need most)."""
        return self.url("MLFLOW_PORT")

    @property
    def mlflow_image(self) -> str:
        return f"{self.compose_project_name}-mlflow:{self.mlflow_version}"

    @property
    def pgadmin_local_image(self) -> str:
        """PGADMIN_IMAGE with its bytecode compiled, which Compose builds (Dockerfile.pgadmin)."""
        name, _, digest = self.pgadmin_image.partition("@")
        last = name.rsplit("/", 1)[-1]
        tag = digest.removeprefix("sha256:")[:12] if digest else last.partition(":")[2] or "latest"
        return f"{self.compose_project_name}-pgadmin:{tag}"

    def secret_values(self) -> list[str]:
        """Every secret, so that output and generated files can be checked against them."""
        return [
            value.get_secret_value()
            for value in (getattr(self, key.lower()) for key in sorted(SECRET_KEYS))
            if value.get_secret_value()
        ]


def _split(names: str) -> list[str]:
    return [name.strip() for name in names.split(",") if name.strip()]


def _reachable(bind_address: str) -> str:
    """Where this machine reaches a port published on `bind_address`."""
    return "127.0.0.1" if bind_address == "0.0.0.0" else bind_address  # noqa: S104


def release_problem(value: str) -> str | None:
    """What is wrong with an MLFLOW_VERSION apart from its lock; None when it is a usable release."""
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", value)
    if not match:
        return "not an exact release number"
    if (int(match[1]), int(match[2])) < (3, 5):
        return "MLflow before 3.5 has no --allowed-hosts"
    return None


# MLflow servers from 3.15 to 3.17 tell every client (3.15 or later) that downloads may go straight
# to the artifact store, and presign them at the store's in-stack address, which students' machines
# cannot resolve: `download_artifacts` and `load_model` then retry for minutes and fail. 3.18 makes
# that offer an opt-in of the server's, which trackstack leaves off (containers.py).
_PRESIGNS_UNASKED = ((3, 15), (3, 18))


def artifact_download_warning(version: str) -> str | None:
    """A warning for MLflow server releases that send today's clients to an address they cannot reach."""
    match = re.fullmatch(r"(\d+)\.(\d+)\.\d+", version)
    if not match or not _PRESIGNS_UNASKED[0] <= (int(match[1]), int(match[2])) < _PRESIGNS_UNASKED[1]:
        return None
    return (
        f"MLflow {version}'s server sends clients of MLflow 3.15 or later to download artifacts from "
        "http://minio:9000, an address inside the stack: their downloads and model loads hang. "
        "Fix: set MLFLOW_VERSION=3.18.0 (or later) in .env, or have every client set "
        "MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD=false"
    )


def _looks_like_ip(value: str) -> bool:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        return False
    return True


_FIELDS = {str(field.alias): field for name, field in Settings.model_fields.items() if name != "ports"}
# Every `.env` key, in the order of `.env.example`'s sections.
KEYS: tuple[str, ...] = (*list(_FIELDS)[:3], *PORT_KEYS, *list(_FIELDS)[3:])
SECRET_KEYS = frozenset(key for key, field in _FIELDS.items() if field.annotation is SecretStr)
# Secrets the user brings (another service's keys): `invoke init` leaves them empty.
USER_SECRET_KEYS = frozenset({"BACKUP_S3_SECRET_KEY"})
# Keys that `.env` may leave out: their defaults keep older `.env` files valid.
OPTIONAL_KEYS = frozenset(key for key, field in _FIELDS.items() if not field.is_required())


def describe(key: str) -> str:
    """What a valid value of `.env` key `key` looks like."""
    if key in ENDPOINT_OF_PORT:
        return f"a free TCP port 1-65535 (course: {ENDPOINT_OF_PORT[key].course_port})"
    field = _FIELDS.get(key)
    return (field.description if field else None) or key
