"""The MLflow UI shows a run that a client logged through the tracking server."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.browser.ui import mlflow_experiments_search
from tests.conftest import Target
from tests.live.cleanup import purge_experiment
from trackstack.settings import Settings


@dataclass(frozen=True)
class LoggedRun:
    experiment: str
    run: str
    metric: tuple[str, str]
    param: tuple[str, str]


@pytest.fixture
def logged_run(settings: Settings, target: Target) -> Iterator[LoggedRun]:
    """An experiment with one finished run (a metric, a parameter), deleted afterwards."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    # Fail at once when MLflow is down, rather than after the client's minutes of retries.
    try:
        requests.get(f"{settings.mlflow_url}/health", timeout=5).raise_for_status()
    except requests.RequestException as error:
        pytest.fail(f"MLflow does not answer at {settings.mlflow_url}: {error}", pytrace=False)
    client = MlflowClient(tracking_uri=settings.mlflow_url)
    suffix = uuid.uuid4().hex[:10]
    # Values the UI shows exactly as logged: 0.9375 is exact in binary and has no rounding.
    logged = LoggedRun(f"browser-{suffix}", f"run-{suffix}", ("accuracy", "0.9375"), ("learning_rate", "0.0421"))
    experiment_id = client.create_experiment(logged.experiment)
    try:
        run = client.create_run(experiment_id, run_name=logged.run)
        client.log_batch(
            run.info.run_id,
            metrics=[Metric(logged.metric[0], float(logged.metric[1]), int(time.time() * 1000), 0)],
            params=[Param(*logged.param)],
        )
        client.set_terminated(run.info.run_id)
        yield logged
    finally:
        purge_experiment(client, experiment_id, target.collect)


# `logged_run` comes first: the page (and its screenshot) is torn down before the experiment goes.
def test_mlflow_ui_shows_the_logged_run(logged_run: LoggedRun, page: Page, settings: Settings) -> None:
    page.goto(settings.mlflow_url)
    search = mlflow_experiments_search(page)
    search.fill(logged_run.experiment)
    page.keyboard.press("Enter")
    page.get_by_role("link", name=logged_run.experiment, exact=True).click()

    # The experiment's runs table lists the run by name; its page shows what was logged.
    page.get_by_role("link", name=logged_run.run, exact=True).click()
    expect(page.get_by_role("heading", name=logged_run.run, exact=True)).to_be_visible()
    for name, value in (logged_run.metric, logged_run.param):
        row = page.get_by_role("row").filter(has=page.get_by_role("cell", name=name, exact=True))
        expect(row).to_have_count(1)
        expect(row.get_by_role("cell", name=value, exact=True)).to_be_visible()
