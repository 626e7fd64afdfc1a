"""`invoke up`'s decisions, with the engine's answers played back: when it starts nothing, and how it waits."""

from __future__ import annotations

from pathlib import Path

import pytest

from trackstack import engine, probes
from trackstack.engine import DockerError, ServiceState
from trackstack.project import Project
from trackstack.services import SERVICE_NAMES
from trackstack.settings import Settings
from trackstack.targets.compose import apply as stack
from trackstack.targets.compose import state as compose_state

HASHES = {name: f"hash-{name}" for name in SERVICE_NAMES}
# The images trackstack builds, by service, as the engine names them (the others run pinned images).
BUILT = {"mlflow": "sha256:mlflow", "pgadmin": "sha256:pgadmin"}


def state(
    service: str, *, status: str = "running", health: str = "healthy", config_hash: str = "", image_id: str = ""
) -> ServiceState:
    return ServiceState(
        service=service,
        container=f"ts-{service}-1",
        state=status,
        health=health,
        exit_code=0,
        config_hash=config_hash or HASHES[service],
        image_id=image_id or BUILT.get(service, ""),
    )


@pytest.fixture
def project(settings: Settings, tmp_path: Path) -> Project:
    return Project(root=tmp_path, env_file=tmp_path / ".env", settings=settings)


@pytest.fixture
def engine_says(monkeypatch: pytest.MonkeyPatch) -> list[list[ServiceState]]:
    """Each call of `engine.ps` answers the next list of states (the last one repeats)."""
    answers: list[list[ServiceState]] = []

    def ps(_project: Project) -> list[ServiceState]:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    monkeypatch.setattr(engine, "ps", ps)
    monkeypatch.setattr(engine, "config_hashes", lambda _project: dict(HASHES))
    monkeypatch.setattr(engine, "image_id", lambda image: BUILT["pgadmin" if "-pgadmin:" in image else "mlflow"])
    monkeypatch.setattr(engine, "logs_tail", lambda _project, _service: "(log lines)")
    return answers


def test_a_stack_running_as_configured_is_left_alone(project: Project, engine_says: list[list[ServiceState]]) -> None:
    engine_says.append([state(name) for name in SERVICE_NAMES])
    assert stack.running_as_configured(project)


@pytest.mark.parametrize(
    "change",
    [
        {"postgres": state("postgres", config_hash="changed-in-env")},
        {"mlflow": state("mlflow", health="starting")},
        {"minio": state("minio", status="exited", health="")},
        # An image rebuilt since the container was created (a new PGADMIN_IMAGE, `invoke build`).
        {"pgadmin": state("pgadmin", image_id="sha256:older")},
        {"mlflow": state("mlflow", image_id="sha256:older")},
    ],
)
def test_a_changed_or_unready_service_means_starting(
    project: Project, engine_says: list[list[ServiceState]], change: dict[str, ServiceState]
) -> None:
    engine_says.append([change.get(name, state(name)) for name in SERVICE_NAMES])
    assert not stack.running_as_configured(project)


def test_a_missing_service_means_starting(project: Project, engine_says: list[list[ServiceState]]) -> None:
    engine_says.append([state(name) for name in SERVICE_NAMES if name != "pgadmin"])
    assert not stack.running_as_configured(project)


def test_with_a_service_not_running_compose_is_not_asked(
    project: Project, engine_says: list[list[ServiceState]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cold or warm start: preflight saw no running container, so `compose ps` and `config --hash` are skipped."""
    engine_says.append([state(name) for name in SERVICE_NAMES])

    def refuse(_project: Project) -> None:
        raise AssertionError("Compose asked although preflight saw a service not running")

    monkeypatch.setattr(engine, "ps", refuse)
    monkeypatch.setattr(engine, "config_hashes", refuse)
    assert not stack.running_as_configured(project, set())
    assert not stack.running_as_configured(project, set(SERVICE_NAMES) - {"minio"})


def test_with_every_service_running_compose_decides(project: Project, engine_says: list[list[ServiceState]]) -> None:
    engine_says.append([state(name) for name in SERVICE_NAMES])
    assert stack.running_as_configured(project, set(SERVICE_NAMES))
    engine_says[0] = [state(name, health="starting") for name in SERVICE_NAMES]
    assert not stack.running_as_configured(project, set(SERVICE_NAMES))


def test_wait_ready_runs_each_callback_once_the_moment_its_service_answers(
    project: Project, engine_says: list[list[ServiceState]]
) -> None:
    engine_says.append([state(name, health="starting") for name in SERVICE_NAMES])
    answers = {
        "minio": [True],
        "postgres": [False, True],
        "mlflow": [False, False, True],
        "pgadmin": [False] * 3 + [True],
    }
    calls: list[str] = []

    def probe(service: str) -> probes.Readiness:
        ready = answers[service].pop(0) if len(answers[service]) > 1 else answers[service][0]
        return probes.Readiness.READY if ready else probes.Readiness.DOWN

    clock = iter(range(100))
    answered = compose_state.wait_ready(
        project,
        probe=probe,
        on_ready={"minio": lambda: calls.append("bucket"), "pgadmin": lambda: calls.append("pgadmin")},
        clock=lambda: float(next(clock)),
        sleep=lambda _seconds: None,
    )
    assert calls == ["bucket", "pgadmin"]
    assert answered["minio"] < answered["postgres"] < answered["mlflow"] < answered["pgadmin"]


def test_wait_ready_asks_each_service_every_poll_but_the_engine_only_every_few_seconds(
    project: Project, engine_says: list[list[ServiceState]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A look at the engine is a `docker compose ps` process; asking a service is one request."""
    engine_says.append([state(name, health="starting") for name in SERVICE_NAMES])
    played_back = engine.ps
    looks: list[float] = []
    now = [0.0]

    def ps(given: Project) -> list[ServiceState]:
        looks.append(now[0])
        return played_back(given)

    asked: list[str] = []

    def probe(service: str) -> probes.Readiness:
        asked.append(service)
        return probes.Readiness.READY if now[0] >= 10 else probes.Readiness.DOWN

    def sleep(seconds: float) -> None:
        now[0] += seconds

    monkeypatch.setattr(engine, "ps", ps)
    compose_state.wait_ready(project, probe=probe, poll=0.5, look_every=3.0, clock=lambda: now[0], sleep=sleep)
    assert looks == [0.0, 3.0, 6.0, 9.0]
    assert all(asked.count(name) == 21 for name in SERVICE_NAMES), asked  # at 0, 0.5, ... 10 s


def test_wait_ready_fails_at_once_on_a_crashing_service_with_its_log(
    project: Project, engine_says: list[list[ServiceState]]
) -> None:
    engine_says.append([state(name, status="restarting" if name == "mlflow" else "running") for name in SERVICE_NAMES])
    with pytest.raises(DockerError, match=r"service mlflow is restarting(.|\n)*\(log lines\)"):
        compose_state.wait_ready(project, probe=lambda _s: probes.Readiness.DOWN, sleep=lambda _seconds: None)


def test_wait_ready_gives_up_after_its_timeout_naming_who_is_late(
    project: Project, engine_says: list[list[ServiceState]]
) -> None:
    engine_says.append([state(name, health="starting") for name in SERVICE_NAMES])
    clock = iter(range(0, 1000, 50))
    with pytest.raises(DockerError, match="pgadmin not ready after 120s"):
        compose_state.wait_ready(
            project,
            timeout=120,
            probe=lambda s: probes.Readiness.DOWN if s == "pgadmin" else probes.Readiness.READY,
            clock=lambda: float(next(clock)),
            sleep=lambda _seconds: None,
        )


def test_wait_ready_leaves_a_service_alone_until_it_is_started(
    project: Project, engine_says: list[list[ServiceState]]
) -> None:
    """After `invoke stop`, MLflow's old container is exited until Postgres answers and MLflow is started."""
    engine_says.append([state(name, status="exited" if name == "mlflow" else "running") for name in SERVICE_NAMES])
    later = {"mlflow"}

    def start_mlflow() -> None:
        engine_says[0] = [state(name) for name in SERVICE_NAMES]
        later.discard("mlflow")

    answered = compose_state.wait_ready(
        project,
        probe=lambda _s: probes.Readiness.READY,
        on_ready={"postgres": start_mlflow},
        later=later,
        sleep=lambda _seconds: None,
    )
    assert set(answered) == set(SERVICE_NAMES)


@pytest.mark.parametrize(
    ("base_layers", "current"),
    [
        (["sha256:a", "sha256:b"], True),  # built on the base as it is now
        (["sha256:a", "sha256:new"], False),  # the pinned tag was pulled again with new contents
        (None, True),  # no base image here to compare with: the label decides
    ],
)
def test_the_compiled_pgadmin_image_follows_its_base(
    monkeypatch: pytest.MonkeyPatch, base_layers: list[str] | None, current: bool
) -> None:
    image = stack.LocalImage("pgadmin", "ts-pgadmin:9.18", "digest", "", base="dpage/pgadmin4:9.18")
    layers = {"ts-pgadmin:9.18": ["sha256:a", "sha256:b", "sha256:compiled"], "dpage/pgadmin4:9.18": base_layers}
    monkeypatch.setattr(engine, "image_label", lambda _image, _label: "digest")
    monkeypatch.setattr(engine, "image_layers", layers.get)
    assert image.is_current() is current
    monkeypatch.setattr(engine, "image_label", lambda _image, _label: "another Dockerfile")
    assert not image.is_current()
