"""TLS wherever a login crosses a network: which certificate the server shows (`.env`'s TLS section),
its files, what clients verify it with, and the TLS proxy's Caddyfile (Swarm, and Compose in LAN mode).

Three ways, by `.env`:
- internal (the default): trackstack's own CA, name-constrained to the server's names
  (certificates.py); clients are given its file (`<project>-ca.crt`, for MLFLOW_TRACKING_SERVER_CERT_PATH);
- files: the user's certificate and key (TLS_CERT_FILE, TLS_KEY_FILE), checked to cover the names;
- acme: Caddy's automatic HTTPS with a public CA (TLS_ACME_EMAIL), for public DNS names only.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from trackstack import certificates
from trackstack.certificates import Names
from trackstack.console import write_files
from trackstack.errors import TrackstackError
from trackstack.problems import Problem
from trackstack.settings import Settings
from trackstack.templating import render_template

Mode = Literal["internal", "files", "acme"]
CADDYFILE = "Caddyfile"
# Where the proxy's container reads the certificate files (a Compose secret, a Swarm secret and config).
PROXY_CERT = "/run/secrets/tls_cert"
PROXY_KEY = "/run/secrets/tls_key"
# Names a public CA never certifies (RFC 6761, RFC 8375, and the usual private suffixes).
_PRIVATE_SUFFIXES = (".local", ".localhost", ".test", ".example", ".invalid", ".internal", ".lan", ".home.arpa")


class TlsError(TrackstackError):
    """The certificate `.env` names cannot serve."""


def mode(settings: Settings) -> Mode:
    if settings.tls_acme_email:
        return "acme"
    return "files" if settings.tls_cert_file else "internal"


def ca_file(settings: Settings) -> str:
    """The CA certificate clients are given (internal mode), in the project folder: public, git-ignored."""
    return f"{settings.compose_project_name}-ca.crt"


def private_folder(root: Path, settings: Settings) -> Path:
    """Where trackstack keeps its CA and server keys for this project (0700, git-ignored)."""
    return root / ".trackstack" / "tls" / settings.compose_project_name


def names(settings: Settings, extra: Iterable[str] = ()) -> Names:
    """What the server certificate is for: MLFLOW_PUBLIC_HOSTS (and `extra`), localhost, 127.0.0.1, ::1."""
    return Names.of([*settings.public_hosts, *extra])


def sites(settings: Settings, extra: Iterable[str] = ()) -> list[str]:
    """The proxy's site names: the certificate's names; with ACME the public names only (a public CA
    certifies no loopback name)."""
    if mode(settings) == "acme":
        return [*settings.public_hosts, *extra]
    return [name for name in names(settings, extra).all if ":" not in name]  # ::1 is no site (a socket on it is)


@dataclass(frozen=True)
class ProxyCertificate:
    """The proxy's certificate files as a stack or compose file names them, and their version (a content hash)."""

    cert: str
    key: str
    version: str


@dataclass(frozen=True)
class ServerTls:
    """The certificate files of a server and what its clients verify it with."""

    mode: Mode
    cert: Path | None = None  # the chain the server sends; None: Caddy's own (ACME)
    key: Path | None = None
    ca: Path | None = None  # the CA file clients are given; None: the system's trust store suffices

    @property
    def verify(self) -> bool | str:
        """`requests`' verify= for this server."""
        return str(self.ca) if self.ca else True

    def paths(self, root: Path) -> tuple[str, str]:
        """The certificate's and key's paths as a stack or compose file in `root` names them."""
        assert self.cert  # noqa: S101 - only asked of a server with certificate files
        assert self.key  # noqa: S101
        return _relative(root, self.cert), _relative(root, self.key)

    def for_proxy(self, root: Path) -> ProxyCertificate | None:
        """The files as the proxy's stack or compose file in `root` names them; None with ACME."""
        if self.cert is None or self.key is None:
            return None
        return ProxyCertificate(*self.paths(root), self.version)

    @property
    def version(self) -> str:
        """A short hash of the certificate and key: a new one is a new name (Swarm) or a recreated proxy."""
        if not self.cert or not self.key:
            return ""
        return hashlib.sha256(self.cert.read_bytes() + self.key.read_bytes()).hexdigest()[:12]


def _relative(root: Path, path: Path) -> str:
    """`./path` under `root`, else the absolute path (Compose and `docker stack deploy` read both)."""
    try:
        return f"./{path.resolve().relative_to(root.resolve()).as_posix()}"
    except ValueError:
        return path.resolve().as_posix()


def ensure(root: Path, settings: Settings, extra_names: Sequence[str] = ()) -> ServerTls:
    """The server's certificate files, made or checked now: trackstack's own (issued when missing, on new
    names or near expiry; its CA copied to `ca_file` for clients), the user's (checked), or none (ACME)."""
    chosen = mode(settings)
    if chosen == "acme":
        return ServerTls("acme")
    if chosen == "files":
        cert, key = (_user_file(root, key, getattr(settings, key.lower())) for key in ("TLS_CERT_FILE", "TLS_KEY_FILE"))
        check_user_certificate(cert, key, Names.of([*settings.public_hosts, *extra_names], loopback=False))
        return ServerTls("files", cert, key)
    issued = certificates.ensure(private_folder(root, settings), names(settings, extra_names),
                                 settings.compose_project_name)  # fmt: skip
    write_files(root, {ca_file(settings): issued.ca.read_text(encoding="ascii")})
    return ServerTls("internal", issued.cert, issued.key, root / ca_file(settings))


def _user_file(root: Path, key: str, value: str) -> Path:
    path = (root / value).resolve()
    if not path.is_file():
        raise TlsError(f"{key}={value!r}: no such file ({path}). Fix: set {key} to the file's path "
                       "(relative to the project folder), or remove TLS_CERT_FILE and TLS_KEY_FILE "
                       "for trackstack's own certificate")  # fmt: skip
    return path


def check_user_certificate(cert: Path, key: Path, wanted: Names) -> None:
    """The user's certificate must be a PEM certificate for every name, and the key its own."""
    try:
        certificate = certificates.read_certificate(cert)
    except ValueError:
        raise TlsError(f"TLS_CERT_FILE={cert.name!r} holds no PEM certificate. Fix: give the server's certificate "
                       "(-----BEGIN CERTIFICATE-----), its chain after it") from None  # fmt: skip
    missing = certificates.covered(certificate, wanted)
    if missing:
        raise TlsError(f"TLS_CERT_FILE={cert.name!r} is not valid for {', '.join(missing)}. Fix: a certificate "
                       "whose subjectAltName lists every name of MLFLOW_PUBLIC_HOSTS (and the Ingress host), "
                       "or remove TLS_CERT_FILE and TLS_KEY_FILE for trackstack's own")  # fmt: skip
    try:
        matches = certificates.key_matches(certificate, key)
    except (ValueError, TypeError):
        matches = False
    if not matches:
        raise TlsError(f"TLS_KEY_FILE={key.name!r} is not the unencrypted PEM private key of TLS_CERT_FILE. "
                       "Fix: give that certificate's own key (without a passphrase)")  # fmt: skip


def render_caddyfile(
    settings: Settings,
    *,
    sites: Sequence[str],
    upstream: str,
    health_port: int,
    dynamic_upstream: bool = False,
) -> str:
    """The proxy's Caddyfile: TLS for `sites`, requests on to `upstream` (host:port; with `dynamic_upstream`
    a name whose DNS answers are every MLflow task, Swarm's `tasks.<service>`)."""
    chosen = mode(settings)
    host, _, port = upstream.rpartition(":")
    notes = {
        "internal": "The certificate is trackstack's, from its CA for these names only (certificates.py).",
        "files": "The certificate is the one .env names (TLS_CERT_FILE, TLS_KEY_FILE).",
        "acme": "Caddy gets a public certificate (ACME, TLS_ACME_EMAIL) and keeps it in its volume.",
    }
    return render_template(
        f"{CADDYFILE}.j2",
        certificate_note=notes[chosen],
        sites=list(sites),
        acme_email=settings.tls_acme_email,
        certificate=PROXY_CERT if chosen != "acme" else "",
        key=PROXY_KEY,
        upstream=upstream,
        dynamic_upstream=host if dynamic_upstream else "",
        upstream_port=port,
        health_port=health_port,
    )


def tls_problems(settings: Settings) -> list[Problem]:
    """What is wrong across `.env`'s TLS keys (each key's own form is the field checks')."""
    problems = []
    if bool(settings.tls_cert_file) != bool(settings.tls_key_file):
        given, missing = (
            ("TLS_CERT_FILE", "TLS_KEY_FILE") if settings.tls_cert_file else ("TLS_KEY_FILE", "TLS_CERT_FILE")
        )
        problems.append(Problem(given, repr(getattr(settings, given.lower())), f"needs {missing} too",
                                f"set {missing}, or neither for trackstack's own certificate"))  # fmt: skip
    if settings.tls_acme_email:
        if settings.tls_cert_file:
            problems.append(Problem("TLS_ACME_EMAIL", repr(settings.tls_acme_email),
                                    "ACME and TLS_CERT_FILE are two different certificates",
                                    "keep one: empty TLS_ACME_EMAIL, or TLS_CERT_FILE and TLS_KEY_FILE"))  # fmt: skip
        private = [name for name in settings.public_hosts if not is_public_name(name)]
        if private or not settings.public_hosts:
            problems.append(Problem("TLS_ACME_EMAIL", repr(settings.tls_acme_email),
                                    "a public CA (ACME) certifies public DNS names only; MLFLOW_PUBLIC_HOSTS has "
                                    + (", ".join(private) if private else "none"),
                                    "list public DNS names (no address, wildcard or private suffix) "
                                    "in MLFLOW_PUBLIC_HOSTS, or empty TLS_ACME_EMAIL for trackstack's CA"))  # fmt: skip
        if settings.ports["MLFLOW_PORT"] != 443:
            problems.append(Problem("MLFLOW_PORT", str(settings.ports["MLFLOW_PORT"]),
                                    "with TLS_ACME_EMAIL the CA checks the name on port 443",
                                    "set MLFLOW_PORT=443, or empty TLS_ACME_EMAIL"))  # fmt: skip
    if settings.kube_ingress_tls_secret and settings.kube_ingress_cert_issuer:
        problems.append(Problem("KUBE_INGRESS_CERT_ISSUER", repr(settings.kube_ingress_cert_issuer),
                                "cert-manager writes its own Secret; KUBE_INGRESS_TLS_SECRET names another",
                                "keep one of KUBE_INGRESS_TLS_SECRET and KUBE_INGRESS_CERT_ISSUER"))  # fmt: skip
    return problems


def is_public_name(name: str) -> bool:
    """A DNS name a public CA can certify: no address, no wildcard, a dot, no private suffix."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        lowered = name.lower()
        return "." in lowered and not lowered.startswith("*") and not lowered.endswith(_PRIVATE_SUFFIXES)
    return False
