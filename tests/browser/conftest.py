"""Browser tests: headless Chromium (Debian's, driven by Playwright) against the stack named by `.env`.

Every test gets a fresh page; when it ends, pass or fail, a full-page screenshot of that page is
saved to `artifacts/screenshots/<test name>.png`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Playwright, Route, expect, sync_playwright

from tests.browser.ui import TIMEOUT_MS
from tests.conftest import ROOT
from trackstack.settings import Settings

SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
# Root needs --no-sandbox; the rest keeps Chromium from calling home, which would only stall here.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.exit(f"{CHROMIUM} is missing: run `bash .ci/install-chromium.sh`", returncode=1)
    # Playwright's own browser builds cannot be downloaded here: drive Debian's Chromium.
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    expect.set_options(timeout=TIMEOUT_MS)
    yield browser
    browser.close()


def _offline(route: Route) -> None:
    route.abort("internetdisconnected")


@pytest.fixture
def page(browser: Browser, settings: Settings, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh page that reaches only the stack; screenshotted when the test ends, pass or fail."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    # The machine has no internet: fail requests to anywhere but the stack at once, not by timeout.
    local = re.escape(settings.host)
    context.route(re.compile(rf"^(?!(?:https?|wss?)://(?:{local}|localhost)[:/])[a-z]+://"), _offline)
    page = context.new_page()
    try:
        yield page
    finally:
        try:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
            page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
        finally:
            context.close()
