"""ARTIFACT_STORE: MinIO or SeaweedFS, one entry of the service table each, one compose template."""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml

from trackstack.doctor import check_artifact_store
from trackstack.engine import EngineFeatures
from trackstack.problems import Problem, SettingsError
from trackstack.project import Project
from trackstack.services import MINIO, SEAWEEDFS, STORES
from trackstack.settings import Settings
from trackstack.shared_server import deploy_problems
from trackstack.targets.compose.render import render_all
from trackstack.targets.compose.views import print_urls
from trackstack.targets.kubernetes.render import deploy_problems as kubernetes_deploy_problems
from trackstack.validation import validate


def with_store(values: dict[str, str], store: str) -> Settings:
    return validate(values | {"ARTIFACT_STORE": store})


def compose_of(settings: Settings) -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load(render_all(settings, EngineFeatures())["compose.yaml"])
    return parsed


def test_minio_is_the_default_and_an_older_env_without_the_keys_keeps_it(values: dict[str, str]) -> None:
    older = {key: value for key, value in values.items() if key not in ("ARTIFACT_STORE", "SEAWEEDFS_IMAGE")}
    settings = validate(older)
    assert settings.artifact_store == "minio"
    assert settings.store is MINIO
    assert validate(values).store is MINIO


def test_seaweedfs_runs_the_pinned_image_as_an_all_in_one_server(values: dict[str, str]) -> None:
    settings = with_store(values, "seaweedfs")
    store = compose_of(settings)["services"]["minio"]
    assert store["image"] == settings.seaweedfs_image == "chrislusf/seaweedfs:4.53"
    assert store["command"][:2] == ["mini", "-dir=/data"]
    assert "-s3.port=8333" in store["command"]
    assert "-admin.port=12535" in store["command"]
    # The admin UI where MinIO's console is, the S3 API where MinIO's API is.
    assert store["ports"] == ["127.0.0.1:9001:12535", "127.0.0.1:9000:8333"]
    assert store["volumes"] == ["seaweedfs-data:/data"]
    assert store["healthcheck"]["test"] == ["CMD", "curl", "-fsS", "-o", "/dev/null", "http://127.0.0.1:8333/healthz"]


def test_seaweedfs_gets_the_minio_keys_from_env_as_references(values: dict[str, str]) -> None:
    environment = compose_of(with_store(values, "seaweedfs"))["services"]["minio"]["environment"]
    assert environment == {
        "AWS_ACCESS_KEY_ID": "${MINIO_ROOT_USER:?set MINIO_ROOT_USER in .env}",
        "AWS_SECRET_ACCESS_KEY": "${MINIO_ROOT_PASSWORD:?set MINIO_ROOT_PASSWORD in .env}",
        "WEED_ADMIN_USER": "${MINIO_ROOT_USER:?set MINIO_ROOT_USER in .env}",
        "WEED_ADMIN_PASSWORD": "${MINIO_ROOT_PASSWORD:?set MINIO_ROOT_PASSWORD in .env}",
    }


def test_minio_block_is_what_it_was(values: dict[str, str]) -> None:
    store = compose_of(with_store(values, "minio"))["services"]["minio"]
    assert store["image"] == values["MINIO_IMAGE"]
    assert store["command"] == ["server", "/data", "--address", ":9000", "--console-address", ":9001"]
    assert store["ports"] == ["127.0.0.1:9001:9001", "127.0.0.1:9000:9000"]
    assert store["volumes"] == ["minio-data:/data"]
    assert store["environment"] == {
        "MINIO_ROOT_USER": "${MINIO_ROOT_USER:?set MINIO_ROOT_USER in .env}",
        "MINIO_ROOT_PASSWORD": "${MINIO_ROOT_PASSWORD:?set MINIO_ROOT_PASSWORD in .env}",
        "MINIO_BROWSER_REDIRECT_URL": "http://127.0.0.1:9001",
    }


@pytest.mark.parametrize(("store", "endpoint"), [("minio", "http://minio:9000"), ("seaweedfs", "http://minio:8333")])
def test_mlflow_reaches_the_store_at_its_in_stack_address(values: dict[str, str], store: str, endpoint: str) -> None:
    mlflow = compose_of(with_store(values, store))["services"]["mlflow"]
    assert mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"] == endpoint
    assert mlflow["environment"]["TRACKSTACK_WAIT_FOR"] == f"postgres:5432 {endpoint.removeprefix('http://')}"
    assert mlflow["depends_on"]["minio"] == {"condition": "service_started"}


@pytest.mark.parametrize("store", list(STORES))
def test_each_store_declares_only_its_own_volume_and_no_secret(values: dict[str, str], store: str) -> None:
    settings = with_store(values, store)
    files = render_all(settings, EngineFeatures())
    volumes = set(yaml.safe_load(files["compose.yaml"])["volumes"])
    assert volumes == {"postgres-data", "pgadmin-data", f"{store}-data"}
    for text in files.values():
        for secret in settings.secret_values():
            assert secret not in text


def test_both_stores_are_the_service_minio_on_the_same_keys() -> None:
    assert MINIO.name == SEAWEEDFS.name == "minio"
    assert [e.port_key for e in MINIO.endpoints] == [e.port_key for e in SEAWEEDFS.endpoints]
    assert MINIO.volume != SEAWEEDFS.volume  # switching stores never hands one's data to the other


def test_urls_name_the_store_users_run(values: dict[str, str]) -> None:
    project = Project(root=Path("."), env_file=Path(".env"), settings=with_store(values, "seaweedfs"))
    out = io.StringIO()
    with redirect_stdout(out):
        print_urls(project)
    assert "SeaweedFS admin UI" in out.getvalue()
    assert "MinIO" not in out.getvalue()


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("ARTIFACT_STORE", "s3", "not a known value"),
        ("ARTIFACT_STORE", "MinIO", "not a known value"),
        ("SEAWEEDFS_IMAGE", "chrislusf/seaweedfs:latest", "not pinned"),
        ("SEAWEEDFS_IMAGE", "chrislusf/seaweedfs", "not pinned"),
        ("SEAWEEDFS_IMAGE", "Not An Image", "not an image reference"),
    ],
)
def test_bad_store_keys_are_named_with_their_fix(values: dict[str, str], key: str, value: str, reason: str) -> None:
    with pytest.raises(SettingsError) as caught:
        validate(values | {key: value})
    (problem,) = caught.value.problems
    assert problem.key == key
    assert reason in problem.reason
    assert "seaweedfs" in problem.fix


def test_doctor_warns_about_minio_and_names_the_move(values: dict[str, str]) -> None:
    check = check_artifact_store(with_store(values, "minio"))
    assert check.level == "warn"
    assert not check.blocking
    assert "unmaintained" in check.detail
    assert "archived in 2026" in check.detail
    assert "RELEASE.2025-09-07T16-13-09Z" in check.detail
    assert "CVE-2025-62506" in check.detail
    assert "GHSA-jjjj-jwhf-8rgr" in check.detail
    assert "ARTIFACT_STORE=seaweedfs" in check.fix


def test_doctor_is_content_with_seaweedfs(values: dict[str, str]) -> None:
    check = check_artifact_store(with_store(values, "seaweedfs"))
    assert check.level == "ok"
    assert "SeaweedFS" in check.detail


@pytest.mark.parametrize("check", [deploy_problems, kubernetes_deploy_problems], ids=["swarm", "kubernetes"])
def test_a_shared_server_takes_either_store(
    values: dict[str, str], check: Callable[[dict[str, str]], list[Problem]]
) -> None:
    for store in STORES:
        assert not [p for p in check(values | {"ARTIFACT_STORE": store}) if p.key == "ARTIFACT_STORE"]
