"""Published advisories: MLflow's logins refused on affected releases unless `.env` accepts each; the table."""

from __future__ import annotations

import pytest

from trackstack import advisories
from trackstack.paths import supported_mlflow_versions
from trackstack.problems import SettingsError
from trackstack.validation import RELAXED, validate

BOTH = "CVE-2026-2652,CVE-2026-3198"


def test_logins_on_an_affected_release_are_refused_naming_both_advisories_and_the_release(
    values: dict[str, str],
) -> None:
    values |= {"MLFLOW_AUTH": "true", "MLFLOW_VERSION": "3.8.1"}
    with pytest.raises(SettingsError) as caught:
        validate(values)
    (problem,) = caught.value.problems
    assert problem.key == "MLFLOW_VERSION"
    assert "MLFLOW_AUTH=true" in problem.reason
    assert "CVE-2026-2652 (High, fixed in 3.10.0)" in problem.reason
    assert "CVE-2026-3198 (High, fixed in 3.11.0)" in problem.reason
    newest = supported_mlflow_versions()[-1]
    assert f"set MLFLOW_VERSION={newest}" in problem.fix
    assert f"MLFLOW_AUTH_ACCEPT_ADVISORIES={BOTH}" in problem.fix


def test_accepting_every_advisory_lets_an_old_stack_start(values: dict[str, str]) -> None:
    values |= {"MLFLOW_AUTH": "true", "MLFLOW_VERSION": "3.8.1", "MLFLOW_AUTH_ACCEPT_ADVISORIES": BOTH}
    assert validate(values).mlflow_version == "3.8.1"


def test_accepting_only_one_still_refuses_naming_the_other(values: dict[str, str]) -> None:
    values |= {"MLFLOW_AUTH": "true", "MLFLOW_VERSION": "3.8.1", "MLFLOW_AUTH_ACCEPT_ADVISORIES": "CVE-2026-2652"}
    with pytest.raises(SettingsError) as caught:
        validate(values)
    (problem,) = caught.value.problems
    assert "CVE-2026-3198" in problem.reason
    assert "CVE-2026-2652" not in problem.reason


def test_an_unknown_advisory_is_refused(values: dict[str, str]) -> None:
    values |= {"MLFLOW_AUTH_ACCEPT_ADVISORIES": "CVE-2026-2652, CVE-2099-1"}
    with pytest.raises(SettingsError) as caught:
        validate(values)
    (problem,) = caught.value.problems
    assert problem.key == "MLFLOW_AUTH_ACCEPT_ADVISORIES"
    assert "CVE-2099-1" in problem.reason


def test_an_old_release_without_logins_and_the_tasks_that_start_nothing_are_not_refused(
    values: dict[str, str],
) -> None:
    assert validate(values | {"MLFLOW_VERSION": "3.8.1"}).mlflow_version == "3.8.1"
    assert validate(values | {"MLFLOW_AUTH": "true", "MLFLOW_VERSION": "3.8.1"}, policy=RELAXED).mlflow_auth


def test_every_locked_release_from_3_11_on_has_no_advisory_against_its_logins() -> None:
    for version in supported_mlflow_versions():
        found = advisories.mlflow_auth(version)
        assert (found == []) == (advisories.release(version) >= (3, 11, 0)), version  # type: ignore[operator]
    assert [a.id for a in advisories.mlflow_auth("3.10.2")] == ["CVE-2026-3198"]


@pytest.mark.parametrize(
    ("image", "affected"),
    [
        ("quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z", True),
        ("quay.io/minio/minio:RELEASE.2025-10-15T17-29-55Z", False),
        ("quay.io/minio/minio@sha256:" + "0" * 64, True),  # no published image fixes it
    ],
)
def test_minio_releases_before_the_fix_carry_its_advisory(image: str, affected: bool) -> None:
    assert (advisories.minio(image) == [advisories.MINIO]) == affected


@pytest.mark.parametrize(
    ("image", "affected"),
    [("caddy:2.10.2", True), ("caddy:2.11.0-alpine", True), ("caddy:2.11.1", False), ("caddy:2.11.9", False)],
)
def test_caddy_before_2_11_1_carries_its_advisories(image: str, affected: bool) -> None:
    assert (advisories.caddy(image) == [advisories.CADDY]) == affected
