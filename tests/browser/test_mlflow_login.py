"""With MLFLOW_AUTH=true, Chromium gets MLflow's login prompt (HTTP basic auth) and, logged in, the UI."""

from __future__ import annotations

import re
import uuid

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, expect
from playwright.sync_api import Error as PlaywrightError

from tests.browser.ui import mlflow_experiments_search
from tests.conftest import AuthStack


def _accepting(auth_stack: AuthStack, browser: Browser, **options: object) -> BrowserContext:
    """A browser context that has accepted the server's certificate once, as students are told to
    (LAN mode serves HTTPS with trackstack's own CA, which Chromium does not know)."""
    https = auth_stack.project.settings.mlflow_url.startswith("https:")
    return browser.new_context(ignore_https_errors=https, **options)  # type: ignore[arg-type]


def test_chromium_refuses_the_certificate_until_accepted(auth_stack: AuthStack, browser: Browser) -> None:
    if not auth_stack.project.settings.mlflow_url.startswith("https:"):
        pytest.skip("MLflow is served over plain HTTP on loopback")
    context = browser.new_context()
    try:
        with pytest.raises(PlaywrightError, match="ERR_CERT_AUTHORITY_INVALID"):
            context.new_page().goto(auth_stack.project.settings.mlflow_url)
    finally:
        context.close()


def test_without_a_login_chromium_gets_no_ui(auth_stack: AuthStack, browser: Browser) -> None:
    context = _accepting(auth_stack, browser)
    try:
        # Headless Chromium has nobody to show the login prompt to: it gives up on MLflow's 401.
        with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
            context.new_page().goto(auth_stack.project.settings.mlflow_url)
    finally:
        context.close()


def test_a_wrong_password_gets_401_in_chromium(auth_stack: AuthStack, browser: Browser) -> None:
    context = _accepting(auth_stack, browser, http_credentials={"username": "admin", "password": "not-the-password"})
    try:
        response = context.new_page().goto(auth_stack.project.settings.mlflow_url)
        assert response is not None
        assert response.status == 401
    finally:
        context.close()


def test_the_admin_logs_in_and_sees_the_experiments(auth_stack: AuthStack, browser: Browser) -> None:
    url = auth_stack.project.settings.mlflow_url
    name = f"login-{uuid.uuid4().hex[:8]}"
    created = requests.post(f"{url}/api/2.0/mlflow/experiments/create", json={"name": name},
                            auth=auth_stack.admin, timeout=10, verify=auth_stack.verify)  # fmt: skip
    created.raise_for_status()
    auth_stack.experiments.append(created.json()["experiment_id"])
    user, password = auth_stack.admin
    # Chromium answers MLflow's `WWW-Authenticate: Basic` challenge as a user's login prompt would.
    context = _accepting(auth_stack, browser, http_credentials={"username": user, "password": password})
    try:
        page = context.new_page()
        response = page.goto(url)
        assert response is not None
        assert response.status == 200
        mlflow_experiments_search(page).fill(name)
        page.keyboard.press("Enter")
        expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
        expect(page).to_have_url(re.compile(r"#/experiments"))
    finally:
        context.close()
