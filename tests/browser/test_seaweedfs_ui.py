"""SeaweedFS's admin UI (ARTIFACT_STORE=seaweedfs, on MinIO's console port) lets the root user in and
shows MLflow's bucket and an artifact in it; a wrong password does not get in."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.browser.ui import type_secret
from tests.conftest import Target
from tests.live.cleanup import purge_experiment
from trackstack.settings import Settings


@pytest.fixture(autouse=True)
def _seaweedfs_runs(settings: Settings) -> None:
    if settings.artifact_store != "seaweedfs":
        pytest.skip(f"the stack's ARTIFACT_STORE is {settings.artifact_store}: no SeaweedFS UI (test_minio_console.py)")


@pytest.fixture
def artifact(settings: Settings, target: Target, tmp_path: Path) -> Iterator[str]:
    """A file logged through MLflow, its key in the bucket; the experiment is purged afterwards."""
    from mlflow.tracking import MlflowClient

    try:
        requests.get(f"{settings.mlflow_url}/health", timeout=5).raise_for_status()
    except requests.RequestException as error:
        pytest.fail(f"MLflow does not answer at {settings.mlflow_url}: {error}", pytrace=False)
    client = MlflowClient(tracking_uri=settings.mlflow_url)
    experiment_id = client.create_experiment(f"browser-seaweedfs-{uuid.uuid4().hex[:10]}")
    try:
        run = client.create_run(experiment_id)
        name = f"notes-{uuid.uuid4().hex[:8]}.txt"
        (tmp_path / name).write_text("shown by the SeaweedFS UI\n", encoding="utf-8")
        client.log_artifact(run.info.run_id, str(tmp_path / name))
        yield f"{run.info.artifact_uri.removeprefix('mlflow-artifacts:/')}/{name}"
    finally:
        purge_experiment(client, experiment_id, target.collect)


def _log_in(page: Page, settings: Settings, password: str) -> None:
    page.goto(settings.url("MINIO_CONSOLE_PORT"))
    page.get_by_label("Username").fill(settings.minio_root_user)
    type_secret(page.get_by_label("Password"), password)
    page.get_by_role("button", name="Sign In").click()


# `artifact` first: the page (and its screenshot) is torn down before the experiment goes.
def test_seaweedfs_ui_shows_the_bucket_and_an_artifact(artifact: str, page: Page, settings: Settings) -> None:
    _log_in(page, settings, settings.minio_root_password.get_secret_value())
    expect(page).not_to_have_url(re.compile(r"/login"))

    page.goto(f"{settings.url('MINIO_CONSOLE_PORT')}/object-store/buckets")
    # The link's name starts with its icon's glyph (a private-use character), then the bucket's name.
    bucket_link = page.get_by_role("link", name=re.compile(rf"(^|\W){re.escape(settings.mlflow_bucket)}$"))
    expect(bucket_link.first).to_be_visible()

    # The file browser, in the artifact's folder: the file is listed by its name.
    folder, name = artifact.rsplit("/", 1)
    page.goto(f"{settings.url('MINIO_CONSOLE_PORT')}/files?path=/buckets/{settings.mlflow_bucket}/{folder}")
    expect(page.get_by_text(name).first).to_be_visible()  # (a unique name: icons may precede it)


def test_seaweedfs_ui_refuses_a_wrong_password(page: Page, settings: Settings) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    assert wrong != settings.minio_root_password.get_secret_value()
    _log_in(page, settings, wrong)

    expect(page).to_have_url(re.compile(r"/login"))
    expect(page.get_by_role("alert")).to_be_visible()
    page.goto(f"{settings.url('MINIO_CONSOLE_PORT')}/object-store/buckets")
    expect(page).to_have_url(re.compile(r"/login"))
