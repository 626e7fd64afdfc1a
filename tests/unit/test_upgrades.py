"""A new MLFLOW_VERSION on a deployed stack (trackstack.upgrades), against a stack in memory (fake_stack.py):
what counts as a version change, and the order backup -> stop -> migrate, or back to the old version."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.fake_stack import FakeStack
from trackstack import upgrades
from trackstack.backup_format import verify
from trackstack.settings import Settings
from trackstack.validation import validate

REPOSITORY = "registry.school.example:5000/trackstack-mlflow"


@pytest.mark.parametrize(
    ("image", "version"),
    [
        (f"{REPOSITORY}:3.8.1-0123456789ab", "3.8.1"),
        (f"{REPOSITORY}:3.18.0-0123456789ab@sha256:{'a' * 64}", "3.18.0"),  # a swarm service pins the digest
        ("trackstack-mlflow:3.17.2-ba9876543210", "3.17.2"),
        (f"{REPOSITORY}:latest", None),
        (f"{REPOSITORY}:3.8.1", None),  # not a tag trackstack writes
        ("registry.school.example:5000/mlflow", None),  # the colon is the registry's port
        ("ghcr.io/mlflow/mlflow:v3.8.1-0123456789ab", None),
    ],
)
def test_the_version_is_read_from_the_tag_trackstack_gives_its_image(image: str, version: str | None) -> None:
    assert upgrades.image_version(image) == version


def test_only_running_replicas_of_another_version_are_a_version_change() -> None:
    image = f"{REPOSITORY}:3.8.1-0123456789ab"
    assert upgrades.version_change(image, "3.18.0") == "3.8.1"
    assert upgrades.version_change(image, "3.8.1") is None  # same version: a new build or setting, no upgrade
    assert upgrades.version_change(None, "3.18.0") is None  # nothing runs (first deploy, after undeploy)
    assert upgrades.version_change("somebody/else:1.0", "3.18.0") is None


@pytest.fixture
def old_stack(values: dict[str, str]) -> FakeStack:
    settings: Settings = validate(
        values
        | {
            "MLFLOW_AUTH": "true",
            "MLFLOW_VERSION": "3.8.1",
            "MLFLOW_AUTH_ACCEPT_ADVISORIES": "CVE-2026-2652,CVE-2026-3198",
        }
    )
    return FakeStack(
        settings,
        databases={"postgres": "", settings.postgres_db: "schema 3.8.1", settings.mlflow_auth_db: "users: ann"},
        objects={"1/a/artifacts/model.bin": b"weights"},
        runs=1,
    )


def test_an_upgrade_backs_up_the_old_version_then_stops_every_replica_then_migrates(
    old_stack: FakeStack, tmp_path: Path
) -> None:
    def migrate() -> None:
        assert not old_stack.mlflow_running, "an old replica serves during the migration"
        old_stack.events.append("migrate")
        old_stack.databases[old_stack.settings.postgres_db] = "schema 3.18.0"

    folder = upgrades.upgrade(old_stack, new_version="3.18.0", migrate=migrate, into=tmp_path / "backups")
    assert folder.parent == tmp_path / "backups"
    assert verify(folder)["mlflow_version"] == "3.8.1"  # restorable on the version that wrote it
    assert old_stack.events == ["stop mlflow", "migrate"]  # the deploy starts the new replicas
    assert not old_stack.mlflow_running


def test_a_failed_migration_restores_the_backup_and_starts_the_old_version(
    old_stack: FakeStack, tmp_path: Path
) -> None:
    db = old_stack.settings.postgres_db

    def migrate() -> None:
        old_stack.databases[db] = "half upgraded"  # what a migration stopped midway leaves
        raise RuntimeError("alembic: duplicate column")

    with pytest.raises(upgrades.UpgradeError) as raised:
        upgrades.upgrade(old_stack, new_version="3.18.0", migrate=migrate, into=tmp_path / "backups")
    (folder,) = (tmp_path / "backups").iterdir()
    message = str(raised.value)
    assert str(folder) in message
    assert "MLflow 3.8.1 serves again" in message
    assert "alembic: duplicate column" in message
    assert old_stack.databases[db] == "schema 3.8.1"
    assert old_stack.mlflow_running
    assert old_stack.events[0] == "stop mlflow"
    assert old_stack.events[-1] == "start mlflow"
    assert "after swap 3.8.1" in old_stack.events  # the old version's prepare step on the restored data


def test_a_failed_migration_whose_restore_fails_too_says_how_to_go_back(old_stack: FakeStack, tmp_path: Path) -> None:
    def migrate() -> None:
        old_stack.fail_after_swap = True
        raise RuntimeError("the prepare job failed")

    with pytest.raises(upgrades.UpgradeError) as raised:
        upgrades.upgrade(old_stack, new_version="3.18.0", migrate=migrate, into=tmp_path / "backups")
    (folder,) = (tmp_path / "backups").iterdir()
    assert f"`invoke restore {folder} --yes`" in str(raised.value)
    assert "MLFLOW_VERSION=3.8.1" in str(raised.value)
