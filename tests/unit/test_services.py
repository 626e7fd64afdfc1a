"""The service table and the compose template must say the same thing."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from dotenv import dotenv_values

from tests.conftest import ROOT
from trackstack.engine import EngineFeatures
from trackstack.services import ENDPOINTS, PORT_KEYS, SERVICE_NAMES, SERVICES, VOLUMES, Service
from trackstack.settings import KEYS, Settings
from trackstack.targets.compose.render import render_all


def rendered(settings: Settings) -> dict[str, Any]:
    parsed: dict[str, Any] = yaml.safe_load(render_all(settings, EngineFeatures())["compose.yaml"])
    return parsed


def test_template_has_exactly_the_services_of_the_table(settings: Settings) -> None:
    assert set(rendered(settings)["services"]) == set(SERVICE_NAMES)


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_template_publishes_the_table_ports(settings: Settings, service: Service) -> None:
    block = rendered(settings)["services"][service.name]
    expected = [f"127.0.0.1:{settings.ports[e.port_key]}:{e.container_port}" for e in service.endpoints]
    assert block["ports"] == expected


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_template_mounts_the_table_volume(settings: Settings, service: Service) -> None:
    block = rendered(settings)["services"][service.name]
    expected = [f"{service.volume.name}:{service.volume.mount}"] if service.volume else []
    assert block.get("volumes", []) == expected


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_template_probes_as_the_table_says(settings: Settings, service: Service) -> None:
    check = rendered(settings)["services"][service.name]["healthcheck"]
    assert check["test"] == service.probe.command()
    assert check["start_period"] == f"{service.start_period}s"


@pytest.mark.parametrize("service", SERVICES, ids=lambda s: s.name)
def test_template_uses_the_table_image(settings: Settings, service: Service) -> None:
    image = rendered(settings)["services"][service.name]["image"]
    key = service.image_key
    # pgAdmin runs PGADMIN_IMAGE with its bytecode compiled, in an image Compose builds FROM it.
    built = {"mlflow": settings.mlflow_image, "pgadmin": settings.pgadmin_local_image}
    assert image == (built.get(service.name) or getattr(settings, str(key).lower()))


def test_declared_volumes_are_the_table_volumes(settings: Settings) -> None:
    assert list(rendered(settings)["volumes"]) == [volume.name for volume in VOLUMES]


def test_every_port_key_is_a_setting_with_the_course_default() -> None:
    example = dotenv_values(ROOT / ".env.example", interpolate=False)
    assert set(PORT_KEYS) <= set(KEYS)
    for endpoint in ENDPOINTS:
        assert example[endpoint.port_key] == str(endpoint.course_port)


def test_http_probes_check_the_health_path_users_can_reach() -> None:
    for service in SERVICES:
        public = {(e.container_port, e.health_path) for e in service.endpoints if e.health_path}
        if service.probe.tool != "pg_isready":
            assert (service.probe.port, service.probe.path) in public, service.name


def test_urls_follow_the_table(settings: Settings) -> None:
    assert settings.url("MLFLOW_PORT") == "http://127.0.0.1:5001"
    assert settings.url("MINIO_CONSOLE_PORT") == "http://127.0.0.1:9001"
    assert settings.url("POSTGRES_PORT") == "postgresql://mlflow@127.0.0.1:5432/mlflow"
