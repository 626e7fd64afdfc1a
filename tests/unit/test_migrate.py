"""What `invoke up` does with data of another MLflow schema revision (the decision, not Docker)."""

from __future__ import annotations

import pytest

from trackstack.targets.compose.migrate import Revisions, route, step

IMAGE = Revisions(head="c", known=frozenset({"a", "b", "c"}))


@pytest.mark.parametrize(
    ("found", "expected"),
    [(None, "none"), ("c", "none"), ("a", "upgrade"), ("b", "upgrade"), ("z", "refuse")],
)
def test_only_an_older_known_revision_is_upgraded_and_an_unknown_one_refused(found: str | None, expected: str) -> None:
    assert step(found, IMAGE) == expected


@pytest.mark.parametrize("key", ["MLFLOW_VERSION", "POSTGRES_IMAGE"])
def test_the_way_back_goes_through_backup_reset_and_restore(key: str) -> None:
    text = route(key)
    assert text.startswith("Fix: ")
    assert text.count(key) == 2
    positions = [text.index(word) for word in ("`invoke backup`", "`invoke reset --yes`", "`invoke restore PATH`")]
    assert positions == sorted(positions)
