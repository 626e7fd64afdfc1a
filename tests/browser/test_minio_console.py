"""The MinIO console lets the root user in and lists MLflow's artifact bucket; a wrong password does not."""

from __future__ import annotations

import re
import uuid

import pytest
from playwright.sync_api import Page, expect

from tests.browser.ui import type_secret
from trackstack.settings import Settings


@pytest.fixture(autouse=True)
def _minio_runs(settings: Settings) -> None:
    if settings.artifact_store != "minio":
        pytest.skip(f"the stack's ARTIFACT_STORE is {settings.artifact_store}: no MinIO console (test_seaweedfs_ui.py)")


def _log_in(page: Page, settings: Settings, password: str) -> None:
    page.goto(settings.url("MINIO_CONSOLE_PORT"))
    page.get_by_role("textbox", name="Username").fill(settings.minio_root_user)
    type_secret(page.get_by_role("textbox", name="Password"), password)
    page.get_by_role("button", name="Login").click()


def test_minio_console_lists_the_bucket(page: Page, settings: Settings) -> None:
    # Every new browser profile is shown the AGPL notice once; acknowledge it whenever it is in the way.
    page.add_locator_handler(page.get_by_role("button", name="Acknowledge"), lambda acknowledge: acknowledge.click())
    _log_in(page, settings, settings.minio_root_password.get_secret_value())

    bucket = page.get_by_role("button", name=settings.mlflow_bucket, exact=True)
    expect(bucket).to_be_visible()
    bucket.click()
    expect(page.get_by_role("heading", name=settings.mlflow_bucket, exact=True)).to_be_visible()


def test_minio_console_refuses_a_wrong_password(page: Page, settings: Settings) -> None:
    wrong = f"wrong-{uuid.uuid4().hex}"
    assert wrong != settings.minio_root_password.get_secret_value()
    _log_in(page, settings, wrong)

    expect(page.get_by_text(re.compile("invalid login", re.IGNORECASE))).to_be_visible()
    bucket = page.get_by_role("button", name=settings.mlflow_bucket, exact=True)
    expect(bucket).to_have_count(0)
    expect(page).to_have_url(re.compile(r"/login$"))
