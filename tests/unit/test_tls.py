"""TLS wherever a login crosses a network: trackstack's name-constrained CA, the user's certificate, ACME,
and what each target renders for them (issue 27)."""

from __future__ import annotations

import datetime
import ipaddress
import stat
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509

from trackstack import certificates, tls
from trackstack.certificates import Names
from trackstack.engine import EngineFeatures
from trackstack.problems import SettingsError
from trackstack.settings import Settings
from trackstack.targets.compose.render import CADDYFILE as COMPOSE_CADDYFILE
from trackstack.targets.compose.render import render_all
from trackstack.targets.kubernetes import render as kube
from trackstack.targets.swarm import render as swarm
from trackstack.validation import validate

LAN = {"BIND_ADDRESS": "0.0.0.0", "MLFLOW_AUTH": "true", "MLFLOW_PUBLIC_HOSTS": "mlflow.school.example,192.168.1.20"}
KUBERNETES = {
    "DEPLOY_TARGET": "kubernetes",
    "MLFLOW_AUTH": "true",
    "MLFLOW_IMAGE_REPOSITORY": "registry.school.example/trackstack-mlflow",
}
IMAGE = "registry.school.example/trackstack-mlflow:3.18.0"
CERTIFICATE = tls.ProxyCertificate("./.trackstack/tls/trackstack/server.crt", "./.trackstack/tls/trackstack/server.key",
                                   "0123456789ab")  # fmt: skip


def names() -> Names:
    return Names.of(["mlflow.school.example", "192.168.1.20"])


# -- trackstack's own CA ---------------------------------------------------------------


def test_the_ca_is_name_constrained_critically_to_the_servers_names(tmp_path: Path) -> None:
    issued = certificates.ensure(tmp_path / "tls", names(), "trackstack")
    ca = x509.load_pem_x509_certificate(issued.ca.read_bytes())
    extension = ca.extensions.get_extension_for_class(x509.NameConstraints)
    assert extension.critical
    permitted = extension.value.permitted_subtrees or []
    assert {item.value for item in permitted if isinstance(item, x509.DNSName)} == {"mlflow.school.example",
                                                                                     "localhost"}  # fmt: skip
    assert {item.value for item in permitted if isinstance(item, x509.IPAddress)} == {
        ipaddress.ip_network("192.168.1.20/32"),
        ipaddress.ip_network("127.0.0.1/32"),
        ipaddress.ip_network("::1/128"),
    }
    basic = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical
    assert basic.value.ca
    assert basic.value.path_length == 0


def test_the_server_certificate_covers_the_names_and_chains_to_the_ca(tmp_path: Path) -> None:
    issued = certificates.ensure(tmp_path / "tls", names(), "trackstack")
    chain = x509.load_pem_x509_certificates(issued.cert.read_bytes())
    server, ca = chain
    assert ca == x509.load_pem_x509_certificate(issued.ca.read_bytes())
    assert certificates.covered(server, names()) == []
    assert certificates.covered(server, Names.of(["other.example"])) == ["other.example"]
    server.verify_directly_issued_by(ca)
    assert certificates.key_matches(server, issued.key)


def test_the_keys_are_private_and_reused_until_the_names_change(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    first = certificates.ensure(folder, names(), "trackstack")
    assert first.changed
    if sys.platform != "win32":
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        for path in folder.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    ca, server = first.ca.read_bytes(), first.cert.read_bytes()
    again = certificates.ensure(folder, names(), "trackstack")
    assert not again.changed
    assert (again.ca.read_bytes(), again.cert.read_bytes()) == (ca, server)
    renamed = certificates.ensure(folder, Names.of(["mlflow.other.example"]), "trackstack")
    assert renamed.changed
    assert renamed.ca.read_bytes() != ca  # a CA constrained to the old names cannot sign the new ones
    new_ca = x509.load_pem_x509_certificate(renamed.ca.read_bytes())
    loopback = (ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1"))
    assert certificates.permitted(new_ca) == Names(("mlflow.other.example", "localhost"), loopback)


def test_a_server_certificate_near_expiry_is_issued_again_by_the_same_ca(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    first = certificates.ensure(folder, names(), "trackstack")
    ca, server = first.ca.read_bytes(), first.cert.read_bytes()
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=certificates.SERVER_DAYS - 10)
    renewed = certificates.ensure(folder, names(), "trackstack", now=later)
    assert renewed.changed
    assert renewed.ca.read_bytes() == ca
    assert renewed.cert.read_bytes() != server


# -- the user's certificate and the checks of .env ------------------------------------------


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_a_users_certificate_must_cover_the_names_and_match_its_key(tmp_path: Path) -> None:
    issued = certificates.ensure(tmp_path / "own", Names.of(["mlflow.school.example"], loopback=False), "x")
    tls.check_user_certificate(issued.cert, issued.key, Names.of(["mlflow.school.example"], loopback=False))
    with pytest.raises(tls.TlsError, match=r"^TLS_CERT_FILE=.*not valid for other\.school\.example"):
        tls.check_user_certificate(issued.cert, issued.key, Names.of(["other.school.example"], loopback=False))
    other = certificates.ensure(tmp_path / "other", Names.of(["a.example"]), "x")
    with pytest.raises(tls.TlsError, match=r"^TLS_KEY_FILE="):
        tls.check_user_certificate(issued.cert, other.key, Names.of(["mlflow.school.example"], loopback=False))
    with pytest.raises(tls.TlsError, match=r"^TLS_CERT_FILE=.*no PEM certificate"):
        tls.check_user_certificate(_write(tmp_path / "bad.crt", b"nope"), issued.key, Names.of(["a.example"]))


def test_ensure_uses_the_users_files_and_gives_clients_no_ca(tmp_path: Path, values: dict[str, str]) -> None:
    issued = certificates.ensure(tmp_path / "own", Names.of(["mlflow.school.example"], loopback=False), "x")
    own = {"TLS_CERT_FILE": "own/server.crt", "TLS_KEY_FILE": "own/server.key"}
    settings = validate(values | LAN | {"MLFLOW_PUBLIC_HOSTS": "mlflow.school.example"} | own)
    server = tls.ensure(tmp_path, settings)
    assert (server.mode, server.ca, server.verify) == ("files", None, True)
    assert server.for_proxy(tmp_path) == tls.ProxyCertificate("./own/server.crt", "./own/server.key", server.version)
    assert issued.cert.exists()
    missing = validate(values | LAN | {"TLS_CERT_FILE": "nowhere.crt", "TLS_KEY_FILE": "nowhere.key"})
    with pytest.raises(tls.TlsError, match=r"^TLS_CERT_FILE='nowhere.crt': no such file"):
        tls.ensure(tmp_path, missing)


def test_the_internal_ca_is_copied_for_clients(tmp_path: Path, values: dict[str, str]) -> None:
    settings = validate(values | LAN)
    server = tls.ensure(tmp_path, settings)
    assert server.ca == tmp_path / "trackstack-ca.crt"
    assert server.ca.read_bytes() == (tmp_path / ".trackstack/tls/trackstack/ca.crt").read_bytes()
    assert server.verify == str(server.ca)


def keys_of(error: SettingsError) -> set[str]:
    return {problem.key for problem in error.problems}


@pytest.mark.parametrize(
    ("extra", "key"),
    [
        ({"TLS_CERT_FILE": "a.crt"}, "TLS_CERT_FILE"),
        ({"TLS_KEY_FILE": "a.key"}, "TLS_KEY_FILE"),
        ({"TLS_ACME_EMAIL": "not-an-address"}, "TLS_ACME_EMAIL"),
        ({"TLS_ACME_EMAIL": "it@school.org", "MLFLOW_PORT": "443"}, "TLS_ACME_EMAIL"),  # private names
        ({"TLS_ACME_EMAIL": "it@school.org", "MLFLOW_PUBLIC_HOSTS": "mlflow.school.org"}, "MLFLOW_PORT"),
        ({"KUBE_INGRESS_TLS_SECRET": "Bad_Name"}, "KUBE_INGRESS_TLS_SECRET"),
        ({"KUBE_INGRESS_TLS_SECRET": "a", "KUBE_INGRESS_CERT_ISSUER": "b"}, "KUBE_INGRESS_CERT_ISSUER"),
    ],
)
def test_tls_settings_are_refused_naming_the_key(values: dict[str, str], extra: dict[str, str], key: str) -> None:
    with pytest.raises(SettingsError) as refused:
        validate(values | LAN | extra)
    assert keys_of(refused.value) == {key}, refused.value


def test_acme_takes_public_dns_names_on_port_443(values: dict[str, str]) -> None:
    settings = validate(values | LAN | {"TLS_ACME_EMAIL": "it@school.org", "MLFLOW_PUBLIC_HOSTS": "mlflow.school.org",
                                        "MLFLOW_PORT": "443"})  # fmt: skip
    assert tls.mode(settings) == "acme"
    caddyfile = tls.render_caddyfile(settings, sites=tls.sites(settings), upstream="mlflow:5000", health_port=8080)
    assert "email it@school.org" in caddyfile
    assert "https://mlflow.school.org {" in caddyfile
    assert "\ttls " not in caddyfile  # Caddy's automatic HTTPS


# -- what each target renders ------------------------------------------------------------


def compose(settings: Settings, certificate: tls.ProxyCertificate | None = CERTIFICATE) -> dict[str, Any]:
    return dict(yaml.safe_load(render_all(settings, EngineFeatures(), certificate)["compose.yaml"]))


def test_compose_on_loopback_has_no_proxy(values: dict[str, str]) -> None:
    settings = validate(values)
    files = render_all(settings, EngineFeatures())
    assert "proxy" not in yaml.safe_load(files["compose.yaml"])["services"]
    assert COMPOSE_CADDYFILE not in files
    assert settings.mlflow_url.startswith("http://")


def test_compose_lan_mode_serves_mlflow_through_the_tls_proxy(values: dict[str, str]) -> None:
    settings = validate(values | LAN)
    document = compose(settings)
    proxy = document["services"]["proxy"]
    assert proxy["ports"] == [f"0.0.0.0:{settings.ports['MLFLOW_PORT']}:443"]
    assert "ports" not in document["services"]["mlflow"]
    assert proxy["healthcheck"]["test"][:2] == ["CMD", "wget"]
    assert {item["target"] for item in proxy["secrets"]} == {"tls_cert", "tls_key"}
    assert document["secrets"]["tls-key"]["file"] == CERTIFICATE.key
    caddyfile = render_all(settings, EngineFeatures(), CERTIFICATE)[COMPOSE_CADDYFILE]
    assert "to mlflow:5000" in caddyfile
    assert "tls /run/secrets/tls_cert /run/secrets/tls_key" in caddyfile
    assert "https://127.0.0.1" in caddyfile
    assert settings.mlflow_url == f"https://127.0.0.1:{settings.ports['MLFLOW_PORT']}"
    # A new certificate recreates the proxy.
    renewed = compose(settings, tls.ProxyCertificate(CERTIFICATE.cert, CERTIFICATE.key, "ba9876543210"))
    assert renewed["services"]["proxy"]["environment"] != proxy["environment"]


def test_compose_lan_mode_with_acme_has_no_certificate_files(values: dict[str, str]) -> None:
    settings = validate(values | LAN | {"TLS_ACME_EMAIL": "it@school.org", "MLFLOW_PUBLIC_HOSTS": "mlflow.school.org",
                                        "MLFLOW_PORT": "443"})  # fmt: skip
    document = compose(settings, None)
    assert "secrets" not in document["services"]["proxy"]
    assert "secrets" not in document


SWARM = {"MLFLOW_AUTH": "true", "MLFLOW_PUBLIC_HOSTS": "mlflow.school.example",
         "MLFLOW_IMAGE_REPOSITORY": "registry.school.example:5000/trackstack-mlflow"}  # fmt: skip


def test_swarm_uses_the_certificate_files_named_by_content_and_an_encrypted_overlay(values: dict[str, str]) -> None:
    settings = validate(values | SWARM)
    files = swarm.render_swarm(settings, image=IMAGE, mlflow_replicas=2, certificate=CERTIFICATE)
    stack = yaml.safe_load(files[swarm.STACK_FILE])
    assert stack["networks"]["backend"]["driver_opts"] == {"encrypted": "true"}
    assert stack["secrets"]["tls-cert"] == {"name": "trackstack_tls_cert_0123456789ab", "file": CERTIFICATE.cert}
    assert stack["secrets"]["tls-key"] == {"name": "trackstack_tls_key_0123456789ab", "file": CERTIFICATE.key}
    proxy = stack["services"]["proxy"]
    assert proxy["secrets"] == [
        {"source": "tls-cert", "target": "tls_cert"},
        {"source": "tls-key", "target": "tls_key"},
    ]
    assert "tls internal" not in files[swarm.CADDYFILE]
    assert swarm.ca_file(settings) == "trackstack-ca.crt"


def test_an_overlay_without_encryption_only_when_env_says_so(values: dict[str, str]) -> None:
    settings = validate(values | SWARM | {"SWARM_OVERLAY_ENCRYPTED": "false"})
    files = swarm.render_swarm(settings, image=IMAGE, mlflow_replicas=2, certificate=CERTIFICATE)
    assert "driver_opts" not in yaml.safe_load(files[swarm.STACK_FILE])["networks"]["backend"]


def test_swarm_with_acme_keeps_caddys_certificates(values: dict[str, str]) -> None:
    settings = validate(values | SWARM | {"TLS_ACME_EMAIL": "it@school.org", "MLFLOW_PUBLIC_HOSTS": "mlflow.school.org",
                                          "MLFLOW_PORT": "443"})  # fmt: skip
    files = swarm.render_swarm(settings, image=IMAGE, mlflow_replicas=2, certificate=None)
    stack = yaml.safe_load(files[swarm.STACK_FILE])
    assert "tls-cert" not in stack["secrets"]
    assert "secrets" not in stack["services"]["proxy"]
    assert "email it@school.org" in files[swarm.CADDYFILE]


def kube_docs(settings: Settings) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(kube.render_mlflow(settings, IMAGE, "v1")) if doc]


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return next(doc for doc in docs if doc["kind"] == kind)


@pytest.mark.parametrize(
    ("extra", "secret", "annotation"),
    [
        ({}, kube.TLS_SECRET, None),
        ({"KUBE_INGRESS_TLS_SECRET": "school-wildcard"}, "school-wildcard", None),
        ({"KUBE_INGRESS_CERT_ISSUER": "letsencrypt"}, kube.ISSUED_SECRET, "letsencrypt"),
    ],
)
def test_the_ingress_always_has_tls(
    values: dict[str, str], extra: dict[str, str], secret: str, annotation: str | None
) -> None:
    settings = validate(values | KUBERNETES | {"KUBE_INGRESS_HOST": "mlflow.school.example"} | extra)
    ingress = of_kind(kube_docs(settings), "Ingress")
    assert ingress["spec"]["tls"] == [{"hosts": ["mlflow.school.example"], "secretName": secret}]
    assert ingress["metadata"]["annotations"].get("cert-manager.io/cluster-issuer") == annotation
    assert kube.mlflow_url(settings) == "https://mlflow.school.example"
    assert kube.needs_tls_secret(settings) == (secret == kube.TLS_SECRET)


@pytest.mark.parametrize("service", ["NodePort", "LoadBalancer"])
def test_a_node_port_or_load_balancer_is_served_with_tls_by_mlflow(values: dict[str, str], service: str) -> None:
    settings = validate(values | KUBERNETES | {"KUBE_MLFLOW_SERVICE": service, "MLFLOW_PORT": "30501"})
    docs = kube_docs(settings)
    pod = of_kind(docs, "Deployment")["spec"]["template"]
    container = pod["spec"]["containers"][0]
    assert (
        f"--uvicorn-opts=--timeout-keep-alive=75 --ssl-certfile={kube.TLS_MOUNT}/tls.crt"
        f" --ssl-keyfile={kube.TLS_MOUNT}/tls.key" in (container["args"])
    )
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert {"name": "tls", "secret": {"secretName": kube.TLS_SECRET, "defaultMode": 0o444}} in pod["spec"]["volumes"]
    assert pod["metadata"]["annotations"]["trackstack/tls"] == "v1"
    assert kube.mlflow_url(settings).startswith("https://")
    secret = yaml.safe_load(kube.render_tls_secret(settings, "CERT", "KEY"))
    assert (secret["type"], secret["stringData"]) == ("kubernetes.io/tls", {"tls.crt": "CERT", "tls.key": "KEY"})


def test_tls_terminated_in_front_leaves_mlflow_plain(values: dict[str, str]) -> None:
    settings = validate(values | KUBERNETES | {"KUBE_MLFLOW_SERVICE": "NodePort", "MLFLOW_PORT": "30501",
                                               "TLS_TERMINATED_IN_FRONT": "true"})  # fmt: skip
    container = of_kind(kube_docs(settings), "Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert "--uvicorn-opts=--timeout-keep-alive=75" in container["args"]  # no --ssl-* option
    assert not kube.needs_tls_secret(settings)


def test_acme_is_refused_on_kubernetes_naming_the_key(values: dict[str, str]) -> None:
    problems = kube.deploy_problems(values | KUBERNETES | {"TLS_ACME_EMAIL": "it@school.org"})
    assert [problem.key for problem in problems] == ["TLS_ACME_EMAIL"]
    assert "KUBE_INGRESS_CERT_ISSUER" in problems[0].fix
