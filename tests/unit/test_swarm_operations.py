"""The tasks on a stack deployed to Swarm, without Docker: urls, open, logs, doctor and the prepare job's skip."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from trackstack import doctor, engine
from trackstack.engine import DockerError
from trackstack.errors import TrackstackError
from trackstack.problems import Problem
from trackstack.project import Project
from trackstack.settings import Settings
from trackstack.targets.swarm import apply as deploy
from trackstack.targets.swarm import checks as swarm_checks
from trackstack.targets.swarm import render as swarm
from trackstack.targets.swarm import state as swarmstate
from trackstack.targets.swarm import views as swarmviews
from trackstack.targets.swarm.state import Node, ServiceState
from trackstack.validation import validate

IMAGE = "registry.school.example:5000/trackstack-mlflow:3.17.2-0123456789ab"
SHARED = {
    "MLFLOW_AUTH": "true",
    "MLFLOW_PUBLIC_HOSTS": "mlflow.school.example",
    "MLFLOW_IMAGE_REPOSITORY": "registry.school.example:5000/trackstack-mlflow",
}
SWARM_NAMES = ("proxy", "mlflow", "pgadmin", "minio", "postgres")


@pytest.fixture
def shared(values: dict[str, str]) -> Settings:
    return validate(values | SHARED)


@pytest.fixture
def project(shared: Settings, tmp_path: Path) -> Project:
    return Project(root=tmp_path, env_file=tmp_path / ".env", settings=shared)


# -- urls and open ----------------------------------------------------------------------


def test_urls_name_the_proxy_for_mlflow_and_the_data_node_for_the_rest(values: dict[str, str]) -> None:
    settings = validate(values | SHARED | {"PGADMIN_BIND_ADDRESS": "0.0.0.0"})
    found = {link.title: link for link in swarmviews.links(settings, "10.0.0.5")}
    assert found["MLflow UI and API"].url == "https://mlflow.school.example:5001"
    assert found["pgAdmin"].url == "http://10.0.0.5:5051"
    assert found["MinIO console"].url is None  # not shared in .env: not published on Swarm
    assert found["MinIO console"].publish_with == "MINIO_BIND_ADDRESS"
    assert found["PostgreSQL"].url is None


def test_open_opens_only_the_published_uis(values: dict[str, str]) -> None:
    settings = validate(values | SHARED | {"MINIO_BIND_ADDRESS": "0.0.0.0"})
    assert swarmviews.browser_urls(settings, "10.0.0.5") == {
        "MLflow UI and API": "https://mlflow.school.example:5001",
        "MinIO console": "http://10.0.0.5:9001",
    }


# -- logs --------------------------------------------------------------------------------


def test_logs_of_one_service_or_of_each(shared: Settings) -> None:
    one = swarmviews.log_commands(shared, "mlflow", follow=True, tail=20)
    assert one == [["docker", "service", "logs", "--tail", "20", "--follow", "trackstack_mlflow"]]
    each = swarmviews.log_commands(shared, "", follow=False, tail=100)
    assert [command[-1] for command in each] == [f"trackstack_{name}" for name in SWARM_NAMES]
    assert all("--follow" not in command for command in each)


def test_logs_of_an_unknown_service_name_the_choices(shared: Settings) -> None:
    with pytest.raises(TrackstackError, match="choose one of proxy, mlflow, pgadmin, minio, postgres"):
        swarmviews.log_commands(shared, "mlfow", follow=False, tail=10)


def test_the_tasks_use_swarm_mode_only_when_this_project_is_deployed(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(swarmstate, "services", lambda name: {f"{name}_mlflow": ServiceState("x", 2, 2, "i")})
    assert deploy.deployed(project)
    monkeypatch.setattr(swarmstate, "services", lambda name: {})
    assert not deploy.deployed(project)

    def not_a_manager(name: str) -> dict[str, ServiceState]:
        raise DockerError("`docker service ls` failed: this node is not a swarm manager")

    monkeypatch.setattr(swarmstate, "services", not_a_manager)
    assert not deploy.deployed(project)


def test_following_every_services_logs_runs_them_at_once(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[list[str]] = []

    def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        ran.append(args)
        return subprocess.CompletedProcess(args, 0)

    monkeypatch.setattr(engine, "run", run)
    deploy.logs(project, "", follow=True, tail=5)
    assert sorted(command[-1] for command in ran) == sorted(f"trackstack_{name}" for name in SWARM_NAMES)


# -- doctor ------------------------------------------------------------------------------


def _states(running: dict[str, tuple[int, int]]) -> dict[str, ServiceState]:
    return {f"trackstack_{n}": ServiceState(f"trackstack_{n}", r, d, "i") for n, (r, d) in running.items()}


HEALTHY = {"proxy": (1, 1), "mlflow": (2, 2), "pgadmin": (1, 1), "minio": (1, 1), "postgres": (1, 1)}
DATA = Node("n1", "10.0.0.5", {"trackstack.data": "true"}, True)


def test_doctor_on_a_healthy_swarm(project: Project) -> None:
    checks = swarm_checks.check_swarm([DATA, Node("n2", "10.0.0.6", {}, True)], _states(HEALTHY), project, [])
    assert [(c.name, c.level) for c in checks] == [("swarm nodes", "ok"), ("data node", "ok"), ("replicas", "ok")]
    assert "mlflow 2/2" in checks[2].detail
    assert doctor.next_command(checks) == "deploy"
    assert doctor.next_command([doctor.Check("ports", "ok", "free")]) == "up"


def test_doctor_on_a_swarm_with_a_node_down_and_a_replica_short(project: Project) -> None:
    nodes = [DATA, Node("n2", "10.0.0.6", {}, False)]
    checks = swarm_checks.check_swarm(nodes, _states(HEALTHY | {"mlflow": (1, 2)}), project, [])
    levels = {c.name: c for c in checks}
    assert levels["swarm nodes"].level == "warn"
    assert "down: n2" in levels["swarm nodes"].detail
    assert levels["replicas"].level == "warn"
    assert levels["replicas"].detail == "mlflow 1/2"
    assert not any(c.blocking for c in checks)


def test_doctor_blocks_on_a_data_node_down_an_unlabelled_swarm_or_a_bad_env(project: Project) -> None:
    down = swarm_checks.check_swarm(
        [Node("n1", "a", {"trackstack.data": "true"}, False)], _states(HEALTHY), project, []
    )
    assert [c.name for c in down if c.blocking] == ["data node"]
    unlabelled = swarm_checks.check_swarm([Node("n1", "a", {}, True)], _states(HEALTHY), project, [])
    data = next(c for c in unlabelled if c.name == "data node")
    assert data.blocking
    assert "docker node update --label-add trackstack.data=true" in data.fix
    problem = Problem("MLFLOW_IMAGE_REPOSITORY", "''", "`invoke deploy` pushes there", "set it")
    bad = swarm_checks.check_swarm([DATA], _states(HEALTHY), project, [problem])
    assert bad[-1].blocking
    assert "MLFLOW_IMAGE_REPOSITORY" in bad[-1].detail


# -- the prepare job runs only when something it depends on changed ----------------------


def test_the_prepare_fingerprint_is_on_mlflows_service_and_holds_no_secret(shared: Settings) -> None:
    import yaml

    stack = yaml.safe_load(swarm.render_swarm(shared, image=IMAGE, mlflow_replicas=2)[swarm.STACK_FILE])
    labels = stack["services"]["mlflow"]["deploy"]["labels"]
    assert labels == {swarm.PREPARED_LABEL: swarm.prepare_fingerprint(shared, image=IMAGE)}
    assert "labels" not in stack["services"]["postgres"]["deploy"]


@pytest.mark.parametrize(
    "change",
    [
        {"MLFLOW_BUCKET": "other-bucket"},
        {"MLFLOW_ADMIN_PASSWORD": "another-Strong-Secret-4799"},
        {"MLFLOW_ADMIN_USER": "teacher"},
        {"POSTGRES_DB": "tracking"},
    ],
)
def test_the_prepare_fingerprint_changes_with_what_the_job_depends_on(
    values: dict[str, str], change: dict[str, str]
) -> None:
    before = swarm.prepare_fingerprint(validate(values | SHARED), image=IMAGE)
    assert swarm.prepare_fingerprint(validate(values | SHARED | change), image=IMAGE) != before
    assert swarm.prepare_fingerprint(validate(values | SHARED), image=IMAGE.replace("3.17.2", "3.18.0")) != before
    assert swarm.prepare_fingerprint(validate(values | SHARED | {"MLFLOW_REPLICAS": "3"}), image=IMAGE) == before


def test_a_deploy_skips_the_prepare_job_only_over_running_replicas_of_the_same_fingerprint(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    current = swarm.prepare_fingerprint(project.settings, image=IMAGE)
    labels = {swarm.PREPARED_LABEL: current}
    monkeypatch.setattr(swarmstate, "service_labels", lambda name: labels)
    assert not deploy.needs_prepare(project, IMAGE, running=True)
    assert deploy.needs_prepare(project, IMAGE, running=False)  # first deploy, after undeploy, or 0 replicas
    assert deploy.needs_prepare(project, IMAGE.replace("0123456789ab", "ba9876543210"), running=True)
    labels.clear()  # deployed before the label existed
    assert deploy.needs_prepare(project, IMAGE, running=True)


def test_a_deploy_over_replicas_of_another_mlflow_version_goes_through_the_upgrade(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trackstack import upgrades

    name = swarm.service_name(project.settings, "mlflow")
    current = IMAGE.replace("3.17.2", project.settings.mlflow_version)
    deployed = {name: ServiceState(name, 2, 2, IMAGE.replace("3.17.2", "3.8.1"))}
    monkeypatch.setattr(swarmstate, "services", lambda project_name: deployed)
    calls: list[str] = []
    monkeypatch.setattr(deploy, "prepare", lambda project, image: calls.append("prepare"))

    def upgrade(data: Any, *, new_version: str, migrate: Any, into: Path) -> Path:
        calls.append(f"upgrade {data.settings.mlflow_version} -> {new_version} into {into.name}")
        migrate()
        return into

    monkeypatch.setattr(upgrades, "upgrade", upgrade)
    deploy.migrate(project, current, running=True)
    assert calls == [f"upgrade 3.8.1 -> {project.settings.mlflow_version} into backups", "prepare"]
    calls.clear()
    deployed[name] = ServiceState(name, 2, 2, current)
    deploy.migrate(project, current, running=True)  # the same version: the prepare job alone
    deploy.migrate(project, current, running=False)
    assert calls == ["prepare", "prepare"]
