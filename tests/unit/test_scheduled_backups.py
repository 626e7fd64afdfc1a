"""Scheduled backups, without Docker: the settings, the schedule, retention, a directory destination,
the runner's order of steps, `invoke backups`' listing and the freshness warning, and what each target renders."""

from __future__ import annotations

import ast
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from trackstack import backup_dest, backup_image, backup_runner, schedule, scheduled_backups, targets
from trackstack.backup_dest import DirectoryDestination, Entry, S3Credentials, entry, to_delete
from trackstack.backup_format import ARTIFACTS, DUMP, BackupError, write_manifest
from trackstack.engine import EngineFeatures
from trackstack.paths import PROJECT_FILES
from trackstack.problems import SettingsError
from trackstack.settings import Settings
from trackstack.targets.compose.render import render_all
from trackstack.targets.kubernetes import render as kube
from trackstack.targets.swarm import render as swarm
from trackstack.validation import validate

IMAGE = "registry.school.example/trackstack-mlflow:3.18.0-0123456789ab"
SHARED = {
    "MLFLOW_AUTH": "true",
    "MLFLOW_PUBLIC_HOSTS": "mlflow.school.example",
    "MLFLOW_IMAGE_REPOSITORY": "registry.school.example/trackstack-mlflow",
}
TO_BUCKET = {
    "BACKUP_SCHEDULE": "0 3 * * *",
    "BACKUP_DEST": "s3://class-backups/trackstack",
    "BACKUP_S3_ENDPOINT": "https://s3.school.example",
    "BACKUP_S3_ACCESS_KEY": "class-backup",
    "BACKUP_S3_SECRET_KEY": "Bk-Strong-Secret-4716",
}
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def problems_of(values: dict[str, str]) -> dict[str, str]:
    with pytest.raises(SettingsError) as caught:
        validate(values)
    return {p.key: p.reason for p in caught.value.problems}


# -- settings ---------------------------------------------------------------------------
def test_no_schedule_is_the_default(settings: Settings) -> None:
    assert (settings.backup_schedule, settings.backup_keep, settings.backup_dest) == ("", 7, "")
    assert settings.backup_s3_region == "us-east-1"


def test_a_schedule_with_a_destination_is_taken_and_its_spaces_tidied(values: dict[str, str]) -> None:
    settings = validate(values | {"BACKUP_SCHEDULE": " 0  3 * * 1-5", "BACKUP_DEST": "/mnt/backups/class"})
    assert settings.backup_schedule == "0 3 * * 1-5"


@pytest.mark.parametrize(
    ("key", "bad", "words"),
    [
        ("BACKUP_SCHEDULE", "0 3 * *", "4 fields"),
        ("BACKUP_SCHEDULE", "0 3 * * * *", "6 fields"),
        ("BACKUP_SCHEDULE", "61 3 * * *", "not a valid cron"),
        ("BACKUP_SCHEDULE", "@daily", "1 fields"),
        ("BACKUP_KEEP", "0", "out of range"),
        ("BACKUP_DEST", "backups", "absolute"),
        ("BACKUP_DEST", "s3://Bad_Bucket/x", "s3://bucket/prefix"),
        ("BACKUP_DEST", "s3://class/../x", "'..'"),
        ("BACKUP_DEST", "/mnt/a:b", "bind mount"),
        ("BACKUP_S3_ENDPOINT", "s3.school.example", "http(s) URL"),
        ("BACKUP_S3_ACCESS_KEY", "a key", "plain access key"),
        ("BACKUP_S3_REGION", "US East", "region"),
    ],
)
def test_bad_backup_keys_are_named(values: dict[str, str], key: str, bad: str, words: str) -> None:
    found = problems_of(values | TO_BUCKET | {key: bad})
    assert words in found[key]


def test_a_schedule_needs_a_destination(values: dict[str, str]) -> None:
    assert "destination" in problems_of(values | {"BACKUP_SCHEDULE": "0 3 * * *"})["BACKUP_DEST"]


def test_the_buckets_secret_key_is_masked_and_init_leaves_it_empty(values: dict[str, str]) -> None:
    secret = "Bk-Strong-Secret-4716"
    with pytest.raises(SettingsError) as caught:
        validate(values | TO_BUCKET | {"BACKUP_S3_SECRET_KEY": secret + "$X"})
    assert "BACKUP_S3_SECRET_KEY" in str(caught.value)
    assert secret not in str(caught.value)
    from trackstack.envfile import fill_secrets

    assert "BACKUP_S3_SECRET_KEY=\n" in fill_secrets("BACKUP_S3_SECRET_KEY=\nPOSTGRES_PASSWORD=x\n")


# -- the schedule --------------------------------------------------------------------------
def test_next_time_and_lateness_count_fire_times() -> None:
    assert schedule.next_time("0 3 * * *", NOW) == datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
    assert schedule.previous_time("0 3 * * *", NOW) == datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    assert not schedule.late("0 3 * * *", NOW - timedelta(hours=20), NOW)  # fired once since
    assert schedule.late("0 3 * * *", NOW - timedelta(hours=34), NOW)  # fired twice since
    assert schedule.late("0 3 * * *", None, NOW)
    # Weekdays only: Friday's backup is not late on Sunday (Monday 03:00 has not come).
    friday = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
    assert not schedule.late("0 3 * * 1-5", friday, datetime(2026, 12, 6, 23, 0, tzinfo=UTC))


# -- retention -------------------------------------------------------------------------------
def entries(*names: tuple[str, bool]) -> list[Entry]:
    return [Entry(name, 10, "3.18.0", verified) for name, verified in names]


def test_retention_keeps_the_newest_verified_and_removes_failed_runs_before_them() -> None:
    found = entries(
        ("20261207T030000Z", True),
        ("20261206T030000Z", False),  # a failed run, older than a verified one
        ("20261205T030000Z", True),
        ("20261204T030000Z", True),
    )
    assert [e.name for e in to_delete(found, 2)] == ["20261204T030000Z", "20261206T030000Z"]


def test_an_unverified_newer_backup_never_costs_a_verified_one() -> None:
    found = entries(("20261208T030000Z", False), ("20261207T030000Z", True), ("20261206T030000Z", True))
    assert to_delete(found, 2) == []
    assert to_delete(entries(("20261208T030000Z", False)), 1) == []


# -- a directory destination and the runner -------------------------------------------------
class Facts:
    compose_project_name = "trackstack"
    mlflow_version = "3.18.0"
    postgres_db = "mlflow"
    mlflow_bucket = "mlflow"


def fake_backup(folder: Path, name: str, corrupt: bool = False) -> None:
    (folder / DUMP).write_bytes(b"dump")
    (folder / ARTIFACTS).mkdir(exist_ok=True)
    (folder / ARTIFACTS / "1").mkdir()
    (folder / ARTIFACTS / "1" / "model.pkl").write_bytes(b"model")
    write_manifest(folder, Facts(), stamp=name, target="compose", keys=["1/model.pkl"], auth_database=None)
    if corrupt:
        (folder / DUMP).write_bytes(b"DUMP")


def runner_config(dest: Path, keep: int = 2) -> backup_runner.RunnerConfig:
    env = {
        "TRACKSTACK_PROJECT": "trackstack", "TRACKSTACK_TARGET": "compose", "MLFLOW_VERSION": "3.18.0",
        "MLFLOW_BUCKET": "mlflow", "POSTGRES_USER": "mlflow", "POSTGRES_DB": "mlflow",
        "POSTGRES_AUTH_DB": "mlflow_auth", "POSTGRES_PASSWORD": "pw", "STACK_S3_ACCESS_KEY": "ts",
        "STACK_S3_SECRET_KEY": "pw2", "BACKUP_SCHEDULE": "* * * * *", "BACKUP_KEEP": str(keep),
        "BACKUP_DEST": str(dest),
    }  # fmt: skip
    return backup_runner.RunnerConfig.from_environment(env)


def test_runs_write_verify_mark_and_then_keep_only_the_newest(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backup_runner, "write_backup", lambda config, folder, name: fake_backup(folder, name))
    destination = DirectoryDestination(tmp_path)
    for hour in (1, 2, 3):
        backup_runner.run_once(runner_config(tmp_path), destination, NOW.replace(hour=hour))
    names = [e.name for e in destination.entries()]
    assert names == ["20261207T030000Z", "20261207T020000Z"]
    assert all(e.verified and e.mlflow_version == "3.18.0" for e in destination.entries())
    assert not list(tmp_path.glob(".*"))  # no partial folder left
    assert (tmp_path / names[0] / "verified.json").stat().st_mode & 0o077 == 0


def test_a_backup_that_does_not_read_back_is_not_verified_and_deletes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    destination = DirectoryDestination(tmp_path)
    monkeypatch.setattr(backup_runner, "write_backup", lambda config, folder, name: fake_backup(folder, name))
    backup_runner.run_once(runner_config(tmp_path, keep=1), destination, NOW.replace(hour=1))
    monkeypatch.setattr(backup_runner, "write_backup", lambda c, folder, name: fake_backup(folder, name, corrupt=True))
    with pytest.raises(BackupError, match="checksum mismatch"):
        backup_runner.run_once(runner_config(tmp_path, keep=1), destination, NOW.replace(hour=2))
    state = {e.name: e.verified for e in destination.entries()}
    assert state == {"20261207T010000Z": True, "20261207T020000Z": False}


def test_a_directory_refuses_to_delete_what_is_not_a_backup(tmp_path: Path) -> None:
    with pytest.raises(backup_dest.DestinationError):
        DirectoryDestination(tmp_path).delete("..")


def test_the_runner_reads_secrets_from_files(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    assert backup_dest.environment_secret("X", {"X_FILE": str(tmp_path / "pw"), "X": "plain"}) == "from-file"
    assert backup_dest.environment_secret("X", {"X": "plain"}) == "plain"


def test_pg_dump_runs_over_the_network_without_the_password_on_its_command_line(tmp_path: Path) -> None:
    args = backup_runner.pg_dump_args(runner_config(tmp_path), "mlflow")
    assert args[:2] == ["pg_dump", "--format=custom"]
    assert "-h" in args
    assert "pw" not in args


def test_health_is_the_heartbeats_age(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backup_runner, "HEARTBEAT", tmp_path / "beat")
    assert not backup_runner.healthy()
    (tmp_path / "beat").touch()
    assert backup_runner.healthy()
    assert not backup_runner.healthy(now=(tmp_path / "beat").stat().st_mtime + 120)


# -- invoke backups, restore latest, the warning ---------------------------------------------
def dir_settings(values: dict[str, str], dest: Path) -> Settings:
    return validate(values | {"BACKUP_SCHEDULE": "0 3 * * *", "BACKUP_DEST": str(dest)})


def test_listing_shows_time_size_version_and_state_newest_first(values: dict[str, str], tmp_path: Path) -> None:
    destination = DirectoryDestination(tmp_path)
    for name in ("20261206T030000Z", "20261207T030000Z"):
        with destination.staging(name) as folder:
            fake_backup(folder, name)
    destination.mark_verified("20261206T030000Z", NOW)
    (tmp_path / "20261205T030000Z").mkdir()  # a folder without a manifest
    lines = scheduled_backups.listing(dir_settings(values, tmp_path)).splitlines()
    assert "2026-12-07 03:00:00" in lines[2]
    assert "3.18.0" in lines[2]
    assert "not verified" in lines[2]
    assert "2026-12-06 03:00:00" in lines[3]
    assert lines[3].split()[-2] == "verified"
    assert "incomplete" in lines[4]
    assert "9 B" in lines[3]  # the dump's 4 bytes and the model's 5


def test_restore_latest_fetches_the_newest_verified_backup(values: dict[str, str], tmp_path: Path) -> None:
    destination = DirectoryDestination(tmp_path)
    for name in ("20261206T030000Z", "20261207T030000Z"):
        with destination.staging(name) as folder:
            fake_backup(folder, name)
    destination.mark_verified("20261206T030000Z", NOW)
    settings = dir_settings(values, tmp_path)
    with scheduled_backups.fetched(settings, "latest") as folder:
        assert folder.name == "20261206T030000Z"
    assert scheduled_backups.is_destination_backup("latest")
    assert scheduled_backups.is_destination_backup("s3://class/x/20261206T030000Z")
    assert not scheduled_backups.is_destination_backup("backups/trackstack-20261206T030000Z")


def test_a_destination_without_a_verified_backup_restores_nothing(values: dict[str, str], tmp_path: Path) -> None:
    with (
        pytest.raises(Exception, match="no verified backup"),
        scheduled_backups.fetched(dir_settings(values, tmp_path), "latest"),
    ):
        pass  # pragma: no cover


def test_status_warns_when_the_newest_verified_backup_is_two_periods_old(
    values: dict[str, str], tmp_path: Path
) -> None:
    destination = DirectoryDestination(tmp_path)
    with destination.staging("20261205T030000Z") as folder:
        fake_backup(folder, "20261205T030000Z")
    settings = dir_settings(values, tmp_path)
    assert "no verified backup" in str(scheduled_backups.lateness(settings, NOW))
    destination.mark_verified("20261205T030000Z", NOW)
    assert "2d 9h old" in str(scheduled_backups.lateness(settings, NOW))
    assert scheduled_backups.lateness(settings, datetime(2026, 12, 6, 2, 0, tzinfo=UTC)) is None
    assert "cannot read" in str(scheduled_backups.lateness(dir_settings(values, tmp_path / "gone"), NOW))
    assert scheduled_backups.lateness(validate(values), NOW) is None


def test_an_s3_url_names_its_bucket_prefix_and_backup(values: dict[str, str]) -> None:
    settings = validate(values | TO_BUCKET)
    where, name = scheduled_backups.locate(settings, "s3://other-bucket/a/b/20261207T030000Z")
    assert (where.where, name) == ("s3://other-bucket/a/b/", "20261207T030000Z")


# -- the image and what each target renders ---------------------------------------------------
def test_the_image_is_postgres_with_debians_python_and_trackstacks_backup_modules(settings: Settings) -> None:
    dockerfile = backup_image.render_dockerfile(settings)
    assert dockerfile.splitlines()[3] == f"FROM {settings.postgres_image}"
    assert "apt-get install --yes --no-install-recommends python3 python3-boto3 python3-croniter" in dockerfile
    for module in backup_image.MODULES:
        assert f"COPY src/trackstack/{module} /opt/trackstack/trackstack/" in dockerfile
    ignore = (PROJECT_FILES / ".dockerignore").read_text()
    assert all(f"!src/trackstack/{module}" in ignore for module in backup_image.MODULES)


def test_the_modules_copied_into_the_image_import_only_what_debian_gives_it() -> None:
    allowed = {"boto3", "botocore", "croniter", "trackstack", "__future__"}
    for module in backup_image.MODULES:
        tree = ast.parse((backup_image.PACKAGE_DIR / module).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                node.body = []  # imports for type checkers only
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                top = name.split(".")[0]
                assert top in allowed | sys.stdlib_module_names, (module, name)
                if top == "trackstack" and name != "trackstack":
                    assert f"{name.split('.')[1]}.py" in backup_image.MODULES, (module, name)


def compose_services(settings: Settings) -> dict[str, Any]:
    services: dict[str, Any] = yaml.safe_load(render_all(settings, EngineFeatures())["compose.yaml"])["services"]
    return services


def test_compose_runs_a_backup_service_only_with_a_schedule(values: dict[str, str], tmp_path: Path) -> None:
    assert "backup" not in compose_services(validate(values))
    assert "Dockerfile.backup" not in render_all(validate(values), EngineFeatures())
    settings = dir_settings(values, tmp_path)
    backup = compose_services(settings)["backup"]
    assert backup["volumes"] == [f"{tmp_path}:/backups"]
    assert backup["environment"]["BACKUP_DEST"] == "/backups"
    assert backup["environment"]["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD")
    assert backup["healthcheck"]["test"] == backup_image.HEALTHCHECK
    assert backup["build"]["dockerfile"] == "Dockerfile.backup"
    assert "Dockerfile.backup" in render_all(settings, EngineFeatures())


def test_compose_passes_the_buckets_secret_by_reference(values: dict[str, str]) -> None:
    settings = validate(values | TO_BUCKET)
    files = render_all(settings, EngineFeatures())
    assert TO_BUCKET["BACKUP_S3_SECRET_KEY"] not in "".join(files.values())
    backup = compose_services(settings)["backup"]
    assert backup["environment"]["BACKUP_S3_SECRET_KEY"] == "${BACKUP_S3_SECRET_KEY:-}"
    assert "volumes" not in backup


def test_swarm_runs_the_backup_as_a_service_with_secrets(values: dict[str, str]) -> None:
    plain = yaml.safe_load(swarm.render_swarm(validate(values | SHARED), image=IMAGE, mlflow_replicas=2)["stack.yaml"])
    assert "backup" not in plain["services"]
    settings = validate(values | SHARED | TO_BUCKET)
    text = swarm.render_swarm(settings, image=IMAGE, mlflow_replicas=2)["stack.yaml"]
    assert TO_BUCKET["BACKUP_S3_SECRET_KEY"] not in text
    stack = yaml.safe_load(text)
    backup = stack["services"]["backup"]
    assert backup["image"].startswith(f"{SHARED['MLFLOW_IMAGE_REPOSITORY']}:backup-")
    assert {s["target"] for s in backup["secrets"]} == {
        "postgres_password",
        "minio_root_password",
        "backup_s3_secret_key",
    }
    assert backup["environment"]["BACKUP_S3_SECRET_KEY_FILE"] == "/run/secrets/backup_s3_secret_key"
    assert "backup_s3_secret_key" in stack["secrets"]
    assert "healthcheck" in backup
    assert "placement" not in backup["deploy"]


def test_swarm_binds_a_directory_on_the_data_node(values: dict[str, str]) -> None:
    settings = validate(values | SHARED | {"BACKUP_SCHEDULE": "0 3 * * *", "BACKUP_DEST": "/srv/backups"})
    backup = yaml.safe_load(swarm.render_swarm(settings, image=IMAGE, mlflow_replicas=2)["stack.yaml"])["services"][
        "backup"
    ]
    assert backup["volumes"] == [{"type": "bind", "source": "/srv/backups", "target": "/backups"}]
    assert backup["deploy"]["placement"]["constraints"] == [swarm.DATA_CONSTRAINT]


def test_kubernetes_runs_a_hardened_cronjob_allowed_to_postgres_and_minio(values: dict[str, str]) -> None:
    assert "backup" not in kube.render_kube(validate(values | SHARED), IMAGE)
    settings = validate(values | SHARED | TO_BUCKET)
    parts = kube.render_kube(settings, IMAGE)
    assert TO_BUCKET["BACKUP_S3_SECRET_KEY"] not in kube.manifest_file(parts)
    assert (
        json.loads(kube.render_secret(settings))["stringData"]["backup_s3_secret_key"]
        == TO_BUCKET["BACKUP_S3_SECRET_KEY"]
    )
    cronjob = yaml.safe_load(parts["backup"])
    assert cronjob["kind"] == "CronJob"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    assert cronjob["spec"]["schedule"] == "0 3 * * *"
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 999,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    container = pod["containers"][0]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert container["args"] == ["once"]
    assert not any("hostPath" in volume for volume in pod["volumes"])
    policies = {
        d["metadata"]["name"]: d for d in yaml.safe_load_all(parts["base"]) if d and d["kind"] == "NetworkPolicy"
    }
    for name in ("allow-postgres", "allow-minio"):
        clients = policies[name]["spec"]["ingress"][0]["from"][0]["podSelector"]["matchExpressions"][0]["values"]
        assert "backup" in clients


def test_kubernetes_asks_for_a_bucket(values: dict[str, str]) -> None:
    kube_values = (
        values | SHARED | {"DEPLOY_TARGET": "kubernetes", "BACKUP_SCHEDULE": "0 3 * * *", "BACKUP_DEST": "/srv"}
    )
    assert "BACKUP_DEST" in {p.key for p in targets.deploy_problems(kube_values)}
    assert "BACKUP_DEST" not in {p.key for p in targets.deploy_problems(kube_values | TO_BUCKET)}


def test_no_secret_reaches_the_runners_plain_environment(values: dict[str, str]) -> None:
    settings = validate(values | SHARED | TO_BUCKET)
    environment = backup_image.runner_environment(settings, target="swarm", dest=settings.backup_dest)
    assert not set(settings.secret_values()) & set(environment.values())
    assert S3Credentials("", "", "", "us-east-1").region == "us-east-1"


def test_swarm_logs_include_the_backup_service_when_scheduled(values: dict[str, str]) -> None:
    from trackstack.errors import TrackstackError
    from trackstack.targets.swarm import views

    with pytest.raises(TrackstackError):
        views.log_commands(validate(values | SHARED), "backup", follow=False, tail=10)
    commands = views.log_commands(validate(values | SHARED | TO_BUCKET), "backup", follow=False, tail=10)
    assert commands[0][-1] == "trackstack_backup"


def test_backups_of_an_emptied_stack_never_push_out_the_last_one_with_runs() -> None:
    found = [
        Entry("20261201T030000Z", 10, "3.18.0", True, runs=40),
        Entry("20261202T030000Z", 10, "3.18.0", True, runs=41),
        Entry("20261203T030000Z", 10, "3.18.0", True, runs=0),  # the stack was reset
        Entry("20261204T030000Z", 10, "3.18.0", True, runs=0),
    ]
    assert [e.name for e in to_delete(found, 2)] == ["20261201T030000Z"]  # 41 runs stay
    found.append(Entry("20261205T030000Z", 10, "3.18.0", True, runs=3))  # a new term's first runs
    assert [e.name for e in to_delete(found, 2)] == ["20261203T030000Z", "20261202T030000Z", "20261201T030000Z"]


def test_a_manifest_says_how_many_runs_its_backup_holds() -> None:
    manifest = '{"mlflow_version": "3.18.0", "runs": 7, "files": {"mlflow.dump": {"bytes": 3}}}'
    assert entry("20261201T030000Z", manifest, True).runs == 7
    assert entry("20261201T030000Z", '{"mlflow_version": "3.18.0", "files": {}}', True).runs is None
