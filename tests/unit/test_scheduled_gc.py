"""The scheduled `mlflow gc`, without Docker: its settings, the runner in the MLflow image (its command,
environment, heartbeat), and what each target renders of it, with and without MLFLOW_GC_SCHEDULE."""

from __future__ import annotations

import ast
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from trackstack import gc_runner, mlflow_gc, mlflow_image, schedule
from trackstack.engine import EngineFeatures
from trackstack.paths import PROJECT_FILES
from trackstack.problems import SettingsError
from trackstack.settings import Settings
from trackstack.targets.compose import apply as compose_apply
from trackstack.targets.compose.render import render_all
from trackstack.targets.kubernetes import render as kube
from trackstack.targets.swarm import render as swarm
from trackstack.targets.swarm import views as swarm_views
from trackstack.validation import validate

IMAGE = "registry.school.example/trackstack-mlflow:3.18.0-0123456789ab"
SHARED = {
    "MLFLOW_AUTH": "true",
    "MLFLOW_PUBLIC_HOSTS": "mlflow.school.example",
    "MLFLOW_IMAGE_REPOSITORY": "registry.school.example/trackstack-mlflow",
}
NIGHTLY = {"MLFLOW_GC_SCHEDULE": "30 4 * * *", "MLFLOW_GC_OLDER_THAN": "7d"}


def problems_of(values: dict[str, str]) -> dict[str, str]:
    with pytest.raises(SettingsError) as caught:
        validate(values)
    return {p.key: p.reason for p in caught.value.problems}


# -- settings ---------------------------------------------------------------------------
def test_no_scheduled_gc_by_default_and_a_week_of_grace(settings: Settings) -> None:
    assert (settings.mlflow_gc_schedule, settings.mlflow_gc_older_than) == ("", "7d")


def test_a_schedule_is_taken_and_its_spaces_tidied(values: dict[str, str]) -> None:
    settings = validate(values | {"MLFLOW_GC_SCHEDULE": " 30  4 * * 1-5", "MLFLOW_GC_OLDER_THAN": "1d12h"})
    assert (settings.mlflow_gc_schedule, settings.mlflow_gc_older_than) == ("30 4 * * 1-5", "1d12h")


@pytest.mark.parametrize(
    ("key", "bad", "words"),
    [
        ("MLFLOW_GC_SCHEDULE", "30 4 * *", "4 fields"),
        ("MLFLOW_GC_SCHEDULE", "61 4 * * *", "not a valid cron"),
        ("MLFLOW_GC_OLDER_THAN", "", "not a duration"),
        ("MLFLOW_GC_OLDER_THAN", "7", "not a duration"),
        ("MLFLOW_GC_OLDER_THAN", "12h7d", "not a duration"),
        ("MLFLOW_GC_OLDER_THAN", "1 week", "not a duration"),
    ],
)
def test_bad_gc_keys_are_named(values: dict[str, str], key: str, bad: str, words: str) -> None:
    assert words in problems_of(values | NIGHTLY | {key: bad})[key]


@pytest.mark.parametrize(
    ("text", "length"),
    [("7d", timedelta(days=7)), ("0s", timedelta(0)), ("1d12h30m", timedelta(days=1, hours=12, minutes=30)),
     ("1.5h", timedelta(minutes=90))],
)  # fmt: skip
def test_durations_read_as_mlflow_gc_reads_them(text: str, length: timedelta) -> None:
    assert schedule.duration(text) == length


# -- the command and the runner ----------------------------------------------------------------
def test_gc_runs_as_mlflows_own_role_on_its_bucket(settings: Settings) -> None:
    args = mlflow_gc.gc_args(settings)
    assert args[:2] == ["mlflow", "gc"]
    assert f"--backend-store-uri=postgresql+psycopg2://{settings.mlflow_db_user}@postgres:5432/mlflow" in args
    assert "--artifacts-destination=s3://mlflow" in args
    assert "--older-than=7d" in args
    assert mlflow_gc.loop_command(settings)[:5] == ["python", "-m", "trackstack.gc_runner", "loop", "--"]


def test_gc_logs_in_as_the_admin_only_with_logins(values: dict[str, str]) -> None:
    plain = mlflow_gc.environment(validate(values), shared=False)
    assert "MLFLOW_TRACKING_USERNAME" not in plain
    assert plain["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert plain["AWS_ACCESS_KEY_ID"] == validate(values).mlflow_s3_access_key
    logins = validate(values | SHARED)
    assert mlflow_gc.environment(logins, shared=False)["MLFLOW_TRACKING_USERNAME"] == logins.mlflow_admin_user
    assert not set(logins.secret_values()) & set(mlflow_gc.environment(logins, shared=True).values())


def test_the_runner_gives_gc_the_admins_password_and_not_the_servers_metrics_folder() -> None:
    env = {"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_ADMIN_PASSWORD": "pw", "PROMETHEUS_MULTIPROC_DIR": "/run/m"}
    child = gc_runner.gc_environment(env)
    assert child["MLFLOW_TRACKING_PASSWORD"] == "pw"
    assert "PROMETHEUS_MULTIPROC_DIR" not in child
    assert gc_runner.gc_environment(env | {"MLFLOW_TRACKING_PASSWORD": "own"})["MLFLOW_TRACKING_PASSWORD"] == "own"
    assert "MLFLOW_TRACKING_PASSWORD" not in gc_runner.gc_environment({"MLFLOW_ADMIN_PASSWORD": "pw"})


def test_once_runs_the_command_and_returns_its_status(capfd: pytest.CaptureFixture[str]) -> None:
    assert gc_runner.main(["gc_runner", "once", "--", sys.executable, "-c", "print('purged')"]) == 0
    assert gc_runner.main(["gc_runner", "once", "--", sys.executable, "-c", "raise SystemExit(3)"]) == 3
    out = capfd.readouterr().out
    assert "purged" in out
    assert "failed (exit status 3)" in out
    assert gc_runner.main(["gc_runner", "once"]) == 2


def test_the_loop_refuses_a_bad_schedule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_GC_SCHEDULE", "every night")
    assert gc_runner.main(["gc_runner", "loop", "--", "mlflow", "gc"]) == 2


def test_health_is_the_heartbeats_age(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    beat = tmp_path / "beat"
    monkeypatch.setattr(gc_runner, "HEARTBEAT", beat)
    assert not gc_runner.healthy()
    beat.touch()
    now = beat.stat().st_mtime
    assert gc_runner.healthy(now + 10)
    assert not gc_runner.healthy(now + schedule.HEARTBEAT_STALE + 1)


def test_the_image_carries_the_runner_and_croniter(settings: Settings) -> None:
    dockerfile = mlflow_image.render_dockerfile(settings)
    for module in mlflow_image.IMAGE_MODULES:
        assert f"COPY src/trackstack/{module} /opt/trackstack/trackstack/" in dockerfile
        assert f"!src/trackstack/{module}" in (PROJECT_FILES / ".dockerignore").read_text()
    assert "ENV PYTHONPATH=/opt/trackstack" in dockerfile
    assert "croniter" in mlflow_image.image_requirements(settings.mlflow_version)
    for version in ("3.8.1", "3.17.2", "3.18.0"):
        lock = (PROJECT_FILES / "constraints" / f"mlflow-{version}.txt").read_text()
        assert "\ncroniter==" in lock


def test_the_modules_copied_into_the_mlflow_image_import_only_the_stdlib_and_croniter() -> None:
    for module in mlflow_image.IMAGE_MODULES:
        tree = ast.parse((mlflow_image.PACKAGE_DIR / module).read_text())
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [f"{node.module}.{a.name}" for a in node.names] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                top = name.split(".")[0]
                assert top in {"croniter", "trackstack", "__future__"} | sys.stdlib_module_names, (module, name)
                if top == "trackstack":
                    assert f"{name.split('.')[1]}.py" in mlflow_image.IMAGE_MODULES, (module, name)


def test_the_runner_starts_as_a_module(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "trackstack.gc_runner"], capture_output=True, text=True,
                            check=False)  # fmt: skip
    assert result.returncode == 2
    assert "loop|once|health" in result.stderr


# -- what each target renders --------------------------------------------------------------------
def compose_services(settings: Settings) -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(render_all(settings, EngineFeatures())["compose.yaml"])["services"]
    return services


def test_compose_runs_a_gc_service_only_with_a_schedule(values: dict[str, str]) -> None:
    assert "gc" not in compose_services(validate(values))
    settings = validate(values | SHARED | NIGHTLY)
    gc = compose_services(settings)["gc"]
    assert gc["image"] == settings.mlflow_image
    assert gc["command"] == mlflow_gc.loop_command(settings)
    assert gc["healthcheck"]["test"] == mlflow_gc.HEALTHCHECK
    assert gc["environment"]["PGPASSWORD"].startswith("${MLFLOW_DB_PASSWORD")
    assert gc["environment"]["AWS_SECRET_ACCESS_KEY"].startswith("${MLFLOW_S3_SECRET_KEY")
    assert gc["environment"]["MLFLOW_TRACKING_PASSWORD"].startswith("${MLFLOW_ADMIN_PASSWORD")
    assert gc["environment"]["MLFLOW_GC_SCHEDULE"] == "30 4 * * *"
    assert compose_apply.stack_services(settings)[-1] == "gc"
    assert compose_apply.built_images(settings)["gc"] == settings.mlflow_image
    text = "".join(render_all(settings, EngineFeatures()).values())
    assert not [secret for secret in settings.secret_values() if secret in text]


def test_compose_gc_now_runs_in_mlflows_container(values: dict[str, str]) -> None:
    settings = validate(values | SHARED)
    args = compose_apply.gc_args(settings)
    assert args[:2] == ["exec", "-T"]
    assert "MLFLOW_TRACKING_URI=http://mlflow:5000" in args
    assert f"MLFLOW_TRACKING_USERNAME={settings.mlflow_admin_user}" in args
    assert args[args.index("mlflow", 2) + 1 :] == mlflow_gc.once_command(settings)


def test_swarm_runs_gc_as_a_service_with_secret_files(values: dict[str, str]) -> None:
    plain = yaml.safe_load(swarm.render_swarm(validate(values | SHARED), image=IMAGE, mlflow_replicas=2)["stack.yaml"])
    assert "gc" not in plain["services"]
    settings = validate(values | SHARED | NIGHTLY)
    stack = yaml.safe_load(swarm.render_swarm(settings, image=IMAGE, mlflow_replicas=2)["stack.yaml"])
    gc = stack["services"]["gc"]
    assert gc["image"] == IMAGE
    assert {s["target"] for s in gc["secrets"]} == {"mlflow_db_password", "minio_root_password",
                                                   "mlflow_admin_password"}  # fmt: skip
    assert gc["environment"]["MLFLOW_TRACKING_PASSWORD_FILE"] == "/run/secrets/mlflow_admin_password"
    assert gc["environment"]["PGPASSWORD_FILE"] == "/run/secrets/mlflow_db_password"
    assert {s["target"] for s in gc["secrets"]} <= set(stack["secrets"])
    assert "healthcheck" in gc
    assert swarm_views.log_commands(settings, "gc", follow=False, tail=5)[0][-1] == "trackstack_gc"


def test_swarm_gc_now_is_a_one_shot_job_on_the_stacks_network(values: dict[str, str]) -> None:
    settings = validate(values | SHARED)
    args = swarm.gc_job_args(settings, image=IMAGE)
    assert args[:3] == ["docker", "service", "create"]
    assert "replicated-job" in args
    assert f"{settings.compose_project_name}_backend" in args
    assert args[args.index(IMAGE) + 1 :] == mlflow_gc.once_command(settings)
    assert not [secret for secret in settings.secret_values() if secret in " ".join(args)]


def kube_pod(document: dict[str, Any]) -> dict[str, Any]:
    spec = document["spec"]["jobTemplate"]["spec"] if document["kind"] == "CronJob" else document["spec"]
    pod: dict[str, Any] = spec["template"]["spec"]
    return pod


@pytest.mark.parametrize("job_name", ["", "gc-now-20261207120000"])
def test_kubernetes_gc_is_hardened_like_the_backup(values: dict[str, str], job_name: str) -> None:
    settings = validate(values | SHARED | NIGHTLY)
    document = yaml.safe_load(kube.render_gc(settings, IMAGE, job_name=job_name))
    assert document["kind"] == ("Job" if job_name else "CronJob")
    if not job_name:
        assert (document["spec"]["schedule"], document["spec"]["concurrencyPolicy"]) == ("30 4 * * *", "Forbid")
    pod = kube_pod(document)
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 10001,
                                      "seccompProfile": {"type": "RuntimeDefault"}}  # fmt: skip
    assert pod["automountServiceAccountToken"] is False
    container = pod["containers"][0]
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
    }
    assert {"mountPath": "/tmp", "name": "scratch-1"} in container["volumeMounts"]  # noqa: S108 - the pod's emptyDir
    assert {"name": "scratch-1", "emptyDir": {}} in pod["volumes"]
    assert container["args"] == mlflow_gc.once_command(settings)
    env = {item["name"]: item.get("value") for item in container["env"]}
    assert env["MLFLOW_TRACKING_PASSWORD_FILE"] == "/run/secrets/mlflow_admin_password"
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    items = {item["key"] for item in pod["volumes"][0]["secret"]["items"]}
    assert items == {"mlflow_db_password", "minio_root_password", "mlflow_admin_password"}


def test_kubernetes_lets_gc_reach_postgres_and_the_store_and_deploys_the_cronjob_only_with_a_schedule(
    values: dict[str, str],
) -> None:
    assert "gc" not in kube.render_kube(validate(values | SHARED), IMAGE)
    parts = kube.render_kube(validate(values | SHARED | NIGHTLY), IMAGE)
    assert yaml.safe_load(parts["gc"])["kind"] == "CronJob"
    policies = {
        d["metadata"]["name"]: d for d in yaml.safe_load_all(parts["base"]) if d and d["kind"] == "NetworkPolicy"
    }
    for name in ("allow-postgres", "allow-minio"):
        clients = policies[name]["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][0]["values"]
        assert "gc" in clients


def test_kubernetes_gc_asks_mlflow_at_its_service_over_tls_where_mlflow_serves_it(values: dict[str, str]) -> None:
    settings = validate(values | SHARED | {"KUBE_MLFLOW_SERVICE": "LoadBalancer", "MLFLOW_PORT": "8443"})
    env = kube.gc_environment(settings)
    assert env["MLFLOW_TRACKING_URI"] == "https://mlflow:8443"
    assert env["MLFLOW_TRACKING_INSECURE_TLS"] == "true"
    assert "mlflow:8443" in kube.mlflow_hosts(settings)
    behind = validate(values | SHARED | {"KUBE_MLFLOW_SERVICE": "NodePort", "MLFLOW_PORT": "30501",
                                          "TLS_TERMINATED_IN_FRONT": "true"})  # fmt: skip
    assert kube.gc_environment(behind)["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    assert "MLFLOW_TRACKING_INSECURE_TLS" not in kube.gc_environment(behind)
