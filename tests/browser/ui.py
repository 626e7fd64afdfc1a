"""What the browser tests share besides fixtures: how long to wait, how to type a password."""

from __future__ import annotations

from playwright.sync_api import Locator

# pgAdmin's React UI is slow on 2 cores: wait generously before calling something missing.
TIMEOUT_MS = 60_000


def type_secret(field: Locator, secret: str) -> None:
    """Type a password into `field` without it landing in Playwright's call log when a step fails.

    `Locator.fill` records its value in the log that a failed test prints (and CI keeps);
    keyboard input records nothing.
    """
    field.click()
    field.page.keyboard.insert_text(secret)
