"""pgAdmin lets the `.env` user in and opens the seeded server without asking for its password."""

from __future__ import annotations

import re
import time
from itertools import pairwise

from playwright.sync_api import Locator, Page, expect

from tests.browser.ui import TIMEOUT_MS, type_secret
from trackstack.settings import Settings

# How long pgAdmin gets to expand a node by itself before the test clicks its arrow.
SETTLE_MS = 2_000


def _tree_node(page: Page, label: str) -> Locator:
    # pgAdmin's object explorer has no ARIA tree roles: its rows are `.file-entry` elements.
    # `first`: a name can recur further down (the role `mlflow` below the database `mlflow`).
    name = page.locator(".file-name", has_text=re.compile(rf"^{re.escape(label)}$"))
    return page.locator(".file-tree .file-entry").filter(has=name).first


def _expand(page: Page, label: str, until: Locator) -> None:
    """Open the tree node `label` with its arrow, as a user does, until `until` shows."""
    node = _tree_node(page, label)
    expect(node).to_be_visible()
    arrow = node.locator(".directory-toggle")
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    # pgAdmin opens some nodes itself (a server, a sole child), and loading children takes a
    # while on a busy machine: clicking the arrow then would close the node again. So: give it
    # a moment, click only an arrow that is neither open nor loading, and look again.
    while True:
        try:
            expect(until).to_be_visible(timeout=SETTLE_MS)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise AssertionError(f"the tree node {label!r} did not open") from None
        if not {"open", "loading"} & set((arrow.get_attribute("class") or "").split()):
            arrow.click()


def test_pgadmin_opens_mlflow_tables_without_a_password(page: Page, settings: Settings) -> None:
    # The tree draws only the rows in view: make room for all of MLflow's tables.
    page.set_viewport_size({"width": 1440, "height": 2400})
    page.goto(settings.url("PGADMIN_PORT"))
    page.get_by_placeholder("Email Address / Username").fill(settings.pgadmin_default_email)
    type_secret(page.get_by_placeholder("Password"), settings.pgadmin_default_password.get_secret_value())
    page.get_by_role("button", name="Login").click()

    _expand(page, "Servers", _tree_node(page, "localhost"))
    # Opening the server connects to it: pgAdmin runs the entry's password command, nothing asks.
    password_prompt = page.get_by_text(re.compile(r"enter the password", re.IGNORECASE))
    _expand(page, "localhost", _tree_node(page, "Databases").or_(password_prompt).first)
    expect(password_prompt, "pgAdmin asked for the Postgres password").to_have_count(0, timeout=SETTLE_MS)

    path = ["Databases", settings.postgres_db, "Schemas", "public", "Tables", "experiments"]
    for label, child in pairwise(path):
        _expand(page, label, _tree_node(page, child))
    for table in ("experiments", "runs", "metrics", "params"):
        expect(_tree_node(page, table)).to_be_visible()
