"""Moving a course stack (MLflow 3.8.1) to the version in `.env`: `invoke up` keeps every byte.

The stack is reset and filled at MLflow 3.8.1 through a copy of `.env`, then `invoke up` runs
with `.env` itself, as a user who changed MLFLOW_VERSION would. It ends at `.env`'s version.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.lifecycle.helpers import Invoke, Logged, assert_intact, containers, log_runs, started
from trackstack import database, engine
from trackstack.project import Project
from trackstack.targets.compose.migrate import database_revision, image_revisions

COURSE_VERSION = "3.8.1"
COURSE_ADVISORIES = "CVE-2026-2652,CVE-2026-3198"


@dataclass(frozen=True)
class Upgrade:
    logged: Logged
    model: str
    weights: dict[str, tuple[str, bytes]]  # model version -> (run id, artifact bytes)
    old_revision: str
    first: subprocess.CompletedProcess[str]  # `invoke up` that upgraded
    second: subprocess.CompletedProcess[str]  # `invoke up` right after it
    seconds: float  # how long the upgrading `up` took
    backup: Path


def _version(project: Project) -> str:
    return requests.get(f"{project.settings.mlflow_url}/version", timeout=10).text.strip()


def _register_two_versions(project: Project, tmp: Path) -> tuple[str, dict[str, tuple[str, bytes]]]:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=project.settings.mlflow_url)
    name = f"upgrade-model-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    experiment_id = client.create_experiment(f"upgrade-models-{uuid.uuid4().hex[:8]}")
    weights = {}
    for index in range(2):
        run = client.create_run(experiment_id)
        data = uuid.uuid4().bytes * 512
        folder = tmp / f"model-{index}"
        folder.mkdir()
        (folder / "weights.bin").write_bytes(data)
        client.log_artifacts(run.info.run_id, str(folder), "model")
        client.set_terminated(run.info.run_id)
        version = client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id)
        weights[str(version.version)] = (run.info.run_id, data)
    return name, weights


@pytest.fixture(scope="module")
def upgraded(project: Project, invoke: Invoke, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Upgrade]:
    if project.settings.mlflow_version == COURSE_VERSION:
        pytest.skip(f".env pins MLflow {COURSE_VERSION} itself: there is nothing to upgrade to")
    tmp = tmp_path_factory.mktemp("upgrade")
    course_env = tmp / ".env.course"
    # With logins, 3.8.1 starts only when .env accepts its advisories (an old stack moved forward).
    text = re.sub(r"(?m)^MLFLOW_VERSION=.*$", f"MLFLOW_VERSION={COURSE_VERSION}", project.env_file.read_text())
    text = re.sub(r"(?m)^MLFLOW_AUTH_ACCEPT_ADVISORIES=.*\n?", "", text)
    course_env.write_text(f"{text.rstrip()}\nMLFLOW_AUTH_ACCEPT_ADVISORIES={COURSE_ADVISORIES}\n")
    course_env.chmod(0o600)
    invoke("reset", "--yes", env_file=course_env)
    assert _version(project) == COURSE_VERSION
    logged = log_runs(project, tmp, count=2)
    model, weights = _register_two_versions(project, tmp)
    old_revision = database_revision(project)
    assert old_revision

    started = time.monotonic()
    first = invoke("up")
    seconds = time.monotonic() - started
    second = invoke("up")
    match = re.search(r"backup written to (\S+)", first.stdout)
    assert match, first.stdout
    backup = Path(match[1])
    yield Upgrade(logged, model, weights, old_revision, first, second, seconds, backup)
    shutil.rmtree(backup, ignore_errors=True)


def test_up_names_both_revisions_backs_up_then_upgrades_once(upgraded: Upgrade, project: Project) -> None:
    head = image_revisions(project).head
    out = upgraded.first.stdout
    assert f"schema revision {upgraded.old_revision}" in out
    assert f"needs {head}" in out
    assert out.index("backup written to") < out.index(f"schema upgraded from {upgraded.old_revision} to {head}")
    assert (upgraded.backup / "manifest.json").is_file()
    assert database_revision(project) == head
    assert _version(project) == project.settings.mlflow_version
    upgrade_line = next(line for line in out.splitlines() if "schema upgraded" in line)
    print(f"upgrading `invoke up` took {upgraded.seconds:.0f}s; {upgrade_line}")


def test_a_second_up_does_not_migrate_again(upgraded: Upgrade) -> None:
    assert "schema revision" not in upgraded.second.stdout
    assert "backup written" not in upgraded.second.stdout


def test_every_run_metric_step_and_artifact_byte_is_intact(upgraded: Upgrade, project: Project, tmp_path: Path) -> None:
    assert_intact(project, upgraded.logged, tmp_path)


def test_both_model_versions_and_their_artifacts_are_intact(
    upgraded: Upgrade, project: Project, tmp_path: Path
) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=project.settings.mlflow_url)
    versions = {str(v.version): v for v in client.search_model_versions(f"name='{upgraded.model}'")}
    assert set(versions) == set(upgraded.weights)
    for number, (run_id, data) in upgraded.weights.items():
        assert versions[number].run_id == run_id
        path = client.download_artifacts(run_id, "model/weights.bin", str(tmp_path / number))
        assert Path(path).read_bytes() == data


def test_the_ui_shows_the_old_runs_models_and_artifacts(upgraded: Upgrade, project: Project) -> None:
    """What the MLflow UI's pages fetch, through the same endpoints the UI calls."""
    url = project.settings.mlflow_url
    page = requests.get(f"{url}/", timeout=10)
    assert page.status_code == 200
    assert "<title>MLflow</title>" in page.text
    for run_id, expected in upgraded.logged.runs.items():
        run = requests.get(f"{url}/ajax-api/2.0/mlflow/runs/get", params={"run_id": run_id}, timeout=10).json()["run"]
        assert {p["key"]: p["value"] for p in run["data"]["params"]} == expected["params"]
        name, data = expected["artifact"]
        artifact = requests.get(f"{url}/get-artifact", params={"path": name, "run_uuid": run_id}, timeout=10)
        assert artifact.content == data
    model = requests.get(
        f"{url}/ajax-api/2.0/mlflow/registered-models/get", params={"name": upgraded.model}, timeout=10
    ).json()["registered_model"]
    assert sorted(v["version"] for v in model["latest_versions"]) == [max(upgraded.weights)]


def test_a_new_client_logs_registers_and_loads_a_model(upgraded: Upgrade, project: Project) -> None:
    import mlflow
    import mlflow.pyfunc

    class Shout(mlflow.pyfunc.PythonModel):  # type: ignore[misc,name-defined]  # mlflow is untyped
        def predict(self, context: Any, model_input: list[str]) -> list[str]:
            return [text.upper() for text in model_input]

    mlflow.set_tracking_uri(project.settings.mlflow_url)
    mlflow.set_experiment(f"upgrade-new-client-{uuid.uuid4().hex[:8]}")
    name = f"upgrade-new-{uuid.uuid4().hex[:8]}"
    with mlflow.start_run():
        # Fixed requirements: inferring them would load the model in a subprocess (slow, and not the point).
        mlflow.pyfunc.log_model(
            name="model", python_model=Shout(), registered_model_name=name, pip_requirements=["mlflow-skinny"]
        )
    loaded = mlflow.pyfunc.load_model(f"models:/{name}/latest")
    assert list(loaded.predict(["mlflow", "upgraded"])) == ["MLFLOW", "UPGRADED"]


def test_restoring_the_old_backup_upgrades_it_again(upgraded: Upgrade, project: Project, invoke: Invoke,
                                                    tmp_path: Path) -> None:  # fmt: skip
    result = invoke("restore", "--yes", str(upgraded.backup))  # the stack holds the upgraded data
    assert f"the restored database is at schema revision {upgraded.old_revision}" in result.stdout
    assert database_revision(project) == image_revisions(project).head
    assert_intact(project, upgraded.logged, tmp_path)


def test_a_database_newer_than_the_image_is_refused_and_nothing_changes(
    upgraded: Upgrade, project: Project, invoke: Invoke
) -> None:
    head = database_revision(project)
    assert head
    # A stack about to start MLflow on that data (`up` on a stack running as configured starts
    # nothing and asks nothing: its MLflow already runs on this schema).
    engine.compose(project, "stop", "mlflow", capture=True)
    before = started(project)
    database.psql(project, "UPDATE alembic_version SET version_num = 'f00dfeedbeef';\n")
    try:
        result = invoke("up", check=False)
        assert result.returncode != 0
        assert "schema revision f00dfeedbeef" in result.stderr
        assert "nothing was changed" in result.stderr
        assert "`invoke restore PATH`" in result.stderr
        assert database_revision(project) == "f00dfeedbeef"
        assert started(project) == before
    finally:
        put_back = f"UPDATE alembic_version SET version_num = {database.literal(head)};\n"  # noqa: S608 - quoted
        database.psql(project, put_back)
        invoke("up")


def test_a_postgres_major_change_is_refused_before_postgres_starts(
    upgraded: Upgrade, project: Project, invoke: Invoke, tmp_path: Path
) -> None:
    # A stand-in "next major": the same server, but saying PG_MAJOR is one more (only the check reads it).
    major = int(subprocess.run(["docker", "exec", containers(project)["postgres"]["id"], "cat",
                                "/var/lib/postgresql/data/PG_VERSION"], capture_output=True, text=True,
                               check=True).stdout)  # fmt: skip
    image = f"{project.name}-next-postgres:{major + 1}"
    subprocess.run(["docker", "build", "-q", "-t", image, "-"], input=f"FROM {project.settings.postgres_image}\n"
                   f"ENV PG_MAJOR={major + 1}\n", text=True, check=True, capture_output=True)  # fmt: skip
    try:
        env = tmp_path / ".env.next"
        env.write_text(re.sub(r"(?m)^POSTGRES_IMAGE=.*$", f"POSTGRES_IMAGE={image}", project.env_file.read_text()))
        before = started(project)
        result = invoke("up", check=False, env_file=env)
        assert result.returncode != 0
        assert f"written by PostgreSQL {major}" in result.stderr
        assert f"is PostgreSQL {major + 1}" in result.stderr
        assert "`invoke restore PATH`" in result.stderr
        assert started(project) == before
    finally:
        subprocess.run(["docker", "image", "rm", image], capture_output=True, check=False)
