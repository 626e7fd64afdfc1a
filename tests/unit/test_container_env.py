"""The variables no credential is in are the same on Compose and on Swarm (container_env.py)."""

from __future__ import annotations

import pytest

from tests.unit.test_render import compose_of
from tests.unit.test_swarm import SHARED, stack_of
from trackstack import containers as container_env
from trackstack.problems import SettingsError
from trackstack.validation import validate


@pytest.mark.parametrize("auth", ["false", "true"])
def test_compose_and_swarm_give_the_same_plain_variables(values: dict[str, str], auth: str) -> None:
    settings = validate(values | SHARED | {"MLFLOW_AUTH": auth})
    compose = compose_of(settings)["services"]
    stack = stack_of(settings)["services"]
    mlflow = container_env.mlflow_environment(settings)
    assert mlflow.items() <= compose["mlflow"]["environment"].items()
    # A shared server still gives MLflow the root S3 keys (its own S3 user is made on Compose only).
    assert (
        mlflow.items() - {("AWS_ACCESS_KEY_ID", settings.mlflow_s3_access_key)}
        <= stack["mlflow"]["environment"].items()
    )
    # Compose runs pgAdmin from the image it compiles; Swarm runs PGADMIN_IMAGE as it is.
    assert container_env.pgadmin_environment(compiled_image=True).items() <= compose["pgadmin"]["environment"].items()
    assert container_env.pgadmin_environment().items() <= stack["pgadmin"]["environment"].items()
    for services in (compose, stack):
        assert services["pgadmin"]["configs"][0]["target"] == container_env.PGADMIN_SERVERS_PATH


@pytest.mark.parametrize(("value", "expected"), [(None, "false"), ("false", "false"), ("true", "true")])
def test_mlflow_job_execution_is_off_unless_env_turns_it_on(
    values: dict[str, str], value: str | None, expected: str
) -> None:
    chosen = {} if value is None else {"MLFLOW_JOB_EXECUTION": value}
    settings = validate(values | SHARED | chosen)
    for services in (compose_of(settings)["services"], stack_of(settings)["services"]):
        assert services["mlflow"]["environment"]["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == expected


def test_a_bad_job_execution_value_is_named(values: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match="MLFLOW_JOB_EXECUTION"):
        validate(values | {"MLFLOW_JOB_EXECUTION": "sometimes"})


def test_swarm_tells_each_mlflow_task_its_slot(values: dict[str, str]) -> None:
    """The entrypoint runs MLflow's periodic jobs in slot 1 only; Swarm fills in the template."""
    stack = stack_of(validate(values | SHARED))["services"]
    assert stack["mlflow"]["environment"]["TRACKSTACK_TASK_SLOT"] == "{{.Task.Slot}}"


PRESIGNED_OFFERS = {"MLFLOW_ENABLE_PROXY_MULTIPART_DOWNLOAD": "false", "MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD": "false"}


def test_no_target_lets_mlflow_offer_presigned_transfers_at_the_in_stack_address(values: dict[str, str]) -> None:
    """MLflow would presign at http://minio:9000, which no student's machine resolves (issue 24)."""
    from tests.unit.test_kube import KUBERNETES, pod_specs

    settings = validate(values | SHARED | {"MLFLOW_AUTH": "true"})
    kubernetes = pod_specs(validate(values | KUBERNETES))["mlflow"]["containers"][0]["env"]
    variables = [
        compose_of(settings)["services"]["mlflow"]["environment"],
        stack_of(settings)["services"]["mlflow"]["environment"],
        {item["name"]: item.get("value") for item in kubernetes},
    ]
    for environment in variables:
        assert PRESIGNED_OFFERS.items() <= environment.items()
