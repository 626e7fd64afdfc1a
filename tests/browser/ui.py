"""What the browser tests share besides fixtures: how long to wait, how to type a password."""

from __future__ import annotations

import re

from playwright.sync_api import Locator, Page, expect

# pgAdmin's React UI is slow on 2 cores: wait generously before calling something missing.
TIMEOUT_MS = 60_000


def type_secret(field: Locator, secret: str) -> None:
    """Type a password into `field` without it landing in Playwright's call log when a step fails.

    `Locator.fill` records its value in the log that a failed test prints (and CI keeps);
    keyboard input records nothing.
    """
    field.click()
    field.page.keyboard.insert_text(secret)


def mlflow_experiments_search(page: Page) -> Locator:
    """On MLflow's start page: open the experiment list and return its search box (MLflow 3.8 and 3.17)."""
    experiments = page.get_by_role("link", name="Experiments", exact=True)
    expect(experiments).to_be_visible()
    # MLflow 3.17 opens in its GenAI view, where an experiment shows traces: runs are under
    # "Model training" (MLflow 3.8 has no such switch). It also points at new features once.
    page.add_locator_handler(page.get_by_role("button", name="Got it"), lambda got_it: got_it.click())
    training = page.get_by_text("Model training", exact=True)
    if training.count():
        training.first.click()
    experiments.click()
    # MLflow 3.8 labels the box "Filter experiments by name"; 3.17 has the placeholder "Search experiments".
    return page.get_by_role("textbox", name=re.compile(r"^(Filter experiments by name|Search experiments)$"))
