"""The server's TLS certificate when `.env` names none: a CA that can sign for this server only.

The CA carries a critical NameConstraints extension that permits exactly the server's names and
addresses (MLFLOW_PUBLIC_HOSTS plus localhost, 127.0.0.1 and ::1): a client that trusts it can be
shown a valid certificate for those names and for nothing else, so whoever gets its key cannot
intercept any other site. The files live in a private folder of the project (0700, files 0600,
under the git-ignored `.trackstack/`), are kept across runs, and are made again when the names
change or an expiry comes near. X.509 is the `cryptography` library's; nothing here writes DER.

Also here: whether a user's own certificate (TLS_CERT_FILE) covers the names.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Names every certificate covers besides MLFLOW_PUBLIC_HOSTS: clients on the server itself verify too.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
CA_DAYS = 3 * 365
SERVER_DAYS = 365  # under the 398 days browsers accept for a server certificate
# Made again this long before it expires (a CA sooner: students need the new CA file).
SERVER_RENEW = datetime.timedelta(days=30)
CA_RENEW = datetime.timedelta(days=90)
CA_CERT, CA_KEY, SERVER_CERT, SERVER_KEY = "ca.crt", "ca.key", "server.crt", "server.key"


@dataclass(frozen=True)
class Names:
    """What a certificate is for: DNS names (a `*.` wildcard allowed) and IP addresses."""

    dns: tuple[str, ...]
    ips: tuple[IPAddress, ...]

    @classmethod
    def of(cls, hosts: Iterable[str], *, loopback: bool = True) -> Names:
        """The names of `hosts` (MLFLOW_PUBLIC_HOSTS, ...), with localhost, 127.0.0.1 and ::1 unless told not to."""
        dns: list[str] = []
        ips: list[IPAddress] = []
        for host in [*hosts, *(LOOPBACK_NAMES if loopback else ())]:
            try:
                address = ipaddress.ip_address(host)
            except ValueError:
                if host.lower() not in dns:
                    dns.append(host.lower())
            else:
                if address not in ips:
                    ips.append(address)
        return cls(tuple(dns), tuple(ips))

    def general_names(self) -> list[x509.GeneralName]:
        return [*(x509.DNSName(name) for name in self.dns), *(x509.IPAddress(ip) for ip in self.ips)]

    def constraints(self) -> x509.NameConstraints:
        """Permitted subtrees: each DNS name (a wildcard's domain), each address alone (a /32 or /128)."""
        permitted: list[x509.GeneralName] = [x509.DNSName(name.removeprefix("*.")) for name in self.dns]
        permitted += [x509.IPAddress(ipaddress.ip_network(ip)) for ip in self.ips]
        return x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=None)

    @property
    def all(self) -> list[str]:
        return [*self.dns, *(str(ip) for ip in self.ips)]


@dataclass(frozen=True)
class Issued:
    """The files of trackstack's own CA and server certificate; `changed`: made in this run."""

    folder: Path
    changed: bool

    @property
    def ca(self) -> Path:
        return self.folder / CA_CERT

    @property
    def cert(self) -> Path:
        """The server certificate followed by the CA's (the chain a server sends)."""
        return self.folder / SERVER_CERT

    @property
    def key(self) -> Path:
        return self.folder / SERVER_KEY


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _usage(**allowed: bool) -> x509.KeyUsage:
    """A KeyUsage with only the `allowed` uses."""
    uses = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement",
            "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")  # fmt: skip
    return x509.KeyUsage(**{use: allowed.get(use, False) for use in uses})


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


Signed = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]


def make_ca(names: Names, project: str, *, now: datetime.datetime | None = None) -> Signed:
    """A CA that may sign certificates for `names` only (critical NameConstraints), and its key."""
    now = now or _now()
    key = _key()
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"trackstack {project} CA for {names.all[0]}"[:64])])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(names.constraints(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return certificate, key


def make_server_certificate(
    ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, names: Names, *, now: datetime.datetime | None = None
) -> Signed:
    """A server certificate for `names`, signed by `ca`, and its key."""
    now = now or _now()
    key = _key()
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names.all[0][:64])]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(min(now + datetime.timedelta(days=SERVER_DAYS), ca.not_valid_after_utc))
        .add_extension(x509.SubjectAlternativeName(names.general_names()), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return certificate, key


def covered(certificate: x509.Certificate, names: Names) -> list[str]:
    """The names of `names` that `certificate` is not valid for (its subjectAltName; `*.` matches one label)."""
    try:
        alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return names.all
    dns = [name.lower() for name in alternative.get_values_for_type(x509.DNSName)]
    ips = alternative.get_values_for_type(x509.IPAddress)

    def matches(name: str) -> bool:
        if name in dns:
            return True
        first, _, rest = name.partition(".")
        return bool(rest) and not first.startswith("*") and f"*.{rest}" in dns

    return [name for name in names.dns if not matches(name)] + [str(ip) for ip in names.ips if ip not in ips]


def permitted(ca: x509.Certificate) -> Names | None:
    """The names a CA's critical NameConstraints permit; None when it has none (or not critical)."""
    try:
        extension = ca.extensions.get_extension_for_class(x509.NameConstraints)
    except x509.ExtensionNotFound:
        return None
    if not extension.critical:
        return None
    subtrees = extension.value.permitted_subtrees or []
    dns = tuple(item.value for item in subtrees if isinstance(item, x509.DNSName))
    ips = tuple(
        item.value.network_address
        for item in subtrees
        if isinstance(item, x509.IPAddress) and isinstance(item.value, ipaddress.IPv4Network | ipaddress.IPv6Network)
    )
    return Names(dns, ips)


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())  # fmt: skip


def _write_private(path: Path, data: bytes) -> None:
    """Write `data` to `path` readable by its owner only (0600), replacing it in one step."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(data)
    os.replace(temporary, path)


def _load(folder: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, x509.Certificate] | None:
    try:
        ca = x509.load_pem_x509_certificate((folder / CA_CERT).read_bytes())
        ca_key = serialization.load_pem_private_key((folder / CA_KEY).read_bytes(), password=None)
        server = x509.load_pem_x509_certificate((folder / SERVER_CERT).read_bytes())
        serialization.load_pem_private_key((folder / SERVER_KEY).read_bytes(), password=None)
    except (OSError, ValueError):
        return None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        return None
    return ca, ca_key, server


def _same(a: Names | None, b: Names) -> bool:
    return a is not None and sorted(a.dns) == sorted(n.removeprefix("*.") for n in b.dns) and set(a.ips) == set(b.ips)


def ensure(folder: Path, names: Names, project: str, *, now: datetime.datetime | None = None) -> Issued:
    """trackstack's CA and server certificate for `names` in `folder`: the ones there when they still fit
    (same names, not near expiry), else new ones (a new CA when its names or its own expiry call for it)."""
    now = now or _now()
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    found = _load(folder)
    if found:
        ca, ca_key, server = found
        ca_fits = _same(permitted(ca), names) and ca.not_valid_after_utc - now > CA_RENEW
        server_fits = (
            not covered(server, names)
            and server.issuer == ca.subject
            and server.not_valid_after_utc - now > SERVER_RENEW
        )
        if ca_fits and server_fits:
            return Issued(folder, changed=False)
        if not ca_fits:
            ca, ca_key = make_ca(names, project, now=now)
    else:
        ca, ca_key = make_ca(names, project, now=now)
    server, server_key = make_server_certificate(ca, ca_key, names, now=now)
    _write_private(folder / CA_KEY, _key_pem(ca_key))
    _write_private(folder / SERVER_KEY, _key_pem(server_key))
    _write_private(folder / SERVER_CERT, _pem(server) + _pem(ca))
    _write_private(folder / CA_CERT, _pem(ca))
    return Issued(folder, changed=True)


def read_certificate(path: Path) -> x509.Certificate:
    """The first certificate of a PEM file (a chain starts with the server's); ValueError when there is none."""
    return x509.load_pem_x509_certificates(path.read_bytes())[0]


def key_matches(certificate: x509.Certificate, key_path: Path) -> bool:
    """Whether the private key in `key_path` (PEM, unencrypted) belongs to `certificate`."""
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    return bool(
        key.public_key().public_bytes(serialization.Encoding.PEM, public)
        == certificate.public_key().public_bytes(serialization.Encoding.PEM, public)
    )
