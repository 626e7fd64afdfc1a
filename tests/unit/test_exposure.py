"""`invoke doctor`'s "exposure": each endpoint, where it is published, behind what; the pinned images' advisories."""

from __future__ import annotations

from pathlib import Path

from trackstack.doctor import EXPOSURE, Check, check_advisories
from trackstack.project import Project
from trackstack.targets.base import Link, exposure_checks
from trackstack.targets.compose import views as compose
from trackstack.targets.kubernetes import views as kube
from trackstack.targets.swarm import views as swarm
from trackstack.validation import validate

LOGINS = {"MLFLOW_AUTH": "true", "MLFLOW_PUBLIC_HOSTS": "mlflow.school.example"}
KUBERNETES = {"MLFLOW_AUTH": "true", "DEPLOY_TARGET": "kubernetes", "MLFLOW_IMAGE_REPOSITORY": "registry.example/m"}


def by_title(checks: list[Check]) -> dict[str, Check]:
    assert all(check.name.startswith(f"{EXPOSURE}: ") for check in checks)
    return {check.name.removeprefix(f"{EXPOSURE}: "): check for check in checks}


def test_a_local_stack_publishes_every_port_on_loopback_only(values: dict[str, str], tmp_path: Path) -> None:
    checks = by_title(compose.exposure(Project(tmp_path, tmp_path / ".env", validate(values))))
    assert set(checks) >= {"MLflow UI", "pgAdmin", "PostgreSQL"}
    assert all(check.level == "ok" for check in checks.values())
    assert checks["MLflow UI"].detail == "http://127.0.0.1:5001 on 127.0.0.1:5001, behind nothing"
    assert checks["pgAdmin"].detail.endswith("behind a login")


def test_lan_mode_names_every_address_and_its_login_behind_tls(values: dict[str, str], tmp_path: Path) -> None:
    settings = validate(values | LOGINS | {"BIND_ADDRESS": "0.0.0.0"})
    checks = by_title(compose.exposure(Project(tmp_path, tmp_path / ".env", settings)))
    mlflow = checks["MLflow UI"]
    assert mlflow.level == "ok"  # LAN mode is served by the TLS proxy
    assert mlflow.detail.startswith("https://")
    assert "on 0.0.0.0:5001 (every address of this machine), behind TLS and a login" in mlflow.detail
    assert checks["pgAdmin"].level == "ok"  # PGADMIN_BIND_ADDRESS stays 127.0.0.1


def test_the_scheme_of_the_link_says_whether_tls_is_in_front() -> None:
    links = [
        Link("MLflow UI", "https://mlflow.school.example", "admin: MLFLOW_ADMIN_USER", True),
        Link("Open", "http://10.0.0.5:9000", "no login", False),
        Link("Hidden", None, "keys", False, "MINIO_BIND_ADDRESS"),
    ]
    checks = by_title(exposure_checks(links))
    assert checks["MLflow UI"] == Check(
        f"{EXPOSURE}: MLflow UI",
        "ok",
        "https://mlflow.school.example on mlflow.school.example:443, behind TLS and a login",
    )
    assert checks["Open"].level == "warn"
    assert "anyone who reaches it is let in" in checks["Open"].detail
    assert checks["Hidden"].detail == "not published (set MINIO_BIND_ADDRESS=0.0.0.0 to publish it)"


def test_a_swarm_stack_serves_mlflow_through_tls_and_keeps_the_rest_on_the_data_node(values: dict[str, str]) -> None:
    checks = by_title(exposure_checks(swarm.links(validate(values | LOGINS), "10.0.0.5")))
    assert checks["MLflow UI and API"].level == "ok"
    assert "behind TLS and a login" in checks["MLflow UI and API"].detail
    assert all(
        check.detail.startswith("not published") for title, check in checks.items() if title != "MLflow UI and API"
    )


def test_kubernetes_names_its_port_forwards_and_the_ingress(values: dict[str, str]) -> None:
    checks = by_title(kube.exposure(validate(values | KUBERNETES)))
    assert all(check.level == "ok" for check in checks.values())
    assert "(kubectl port-forward, while a task runs)" in checks["MLflow UI"].detail
    ingress = by_title(kube.exposure(validate(values | KUBERNETES | {"KUBE_INGRESS_HOST": "mlflow.school.example"})))
    assert "on the Ingress for mlflow.school.example" in ingress["MLflow UI"].detail


def test_the_pinned_minio_image_has_its_advisory_with_the_way_out(values: dict[str, str]) -> None:
    (minio,) = check_advisories(validate(values))
    assert minio.level == "warn"
    assert "CVE-2025-62506 / GHSA-jjjj-jwhf-8rgr (High)" in minio.detail
    assert "fixed only in source" in minio.detail
    assert minio.fix.startswith("ARTIFACT_STORE=seaweedfs")
    (clean,) = check_advisories(validate(values | {"ARTIFACT_STORE": "seaweedfs"}))
    assert clean.level == "ok"


def test_mlflow_and_caddy_advisories_are_listed_even_when_accepted(values: dict[str, str]) -> None:
    settings = validate(values | LOGINS | {"ARTIFACT_STORE": "seaweedfs", "MLFLOW_VERSION": "3.8.1",
                                           "MLFLOW_AUTH_ACCEPT_ADVISORIES": "CVE-2026-2652,CVE-2026-3198",
                                           "PROXY_IMAGE": "caddy:2.10.2"})  # fmt: skip
    checks = check_advisories(settings)
    assert [check.name for check in checks] == [f"{EXPOSURE}: MLflow advisory"] * 2 + [f"{EXPOSURE}: Caddy advisory"]
    assert all("accepted in MLFLOW_AUTH_ACCEPT_ADVISORIES" in check.detail for check in checks[:2])
    assert "fixed in 2.11.1" in checks[2].detail
