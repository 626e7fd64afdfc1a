"""The task collection: what `invoke --list` and `invoke --help TASK` tell a user."""

from __future__ import annotations

import pytest
from invoke.collection import Collection

from tests.conftest import ROOT
from trackstack.paths import ENV_FILE_VARIABLE
from trackstack.tasks import POLICY_HELP, RELAXED_NOTE, namespace

NS: Collection = namespace(ROOT)
# Tasks that start or change containers must enforce the policy checks.
ENFORCING = {"render", "build", "up", "seed", "reset", "deploy"}


@pytest.mark.parametrize("name", sorted(NS.task_names))
def test_every_task_says_whether_it_enforces_the_policy_checks(name: str) -> None:
    task = NS[name]
    flags = set(task.help)
    if name in ENFORCING:
        assert set(POLICY_HELP) <= flags, name
        assert RELAXED_NOTE not in (task.__doc__ or "")
    elif name not in ("init", "doctor", "lock"):
        assert not set(POLICY_HELP) & flags, name
        assert RELAXED_NOTE in " ".join((task.__doc__ or "").split()), name


@pytest.mark.parametrize("name", sorted(NS.task_names))
def test_every_task_has_a_one_line_summary_and_help_for_its_flags(name: str) -> None:
    task = NS[name]
    summary = (task.__doc__ or "").strip().splitlines()[0]
    assert summary.endswith("."), name
    for arg in task.get_arguments():
        assert arg.help, f"{name} --{arg.name} has no help"


def test_the_env_file_variable_is_documented_in_the_configuration_section() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    configuration = readme.split("## Configuration", 1)[1].split("\n## ", 1)[0]
    assert ENV_FILE_VARIABLE in configuration
    assert "INVOKE_TRACKSTACK_ENV_FILE" not in readme


def test_the_tasks_do_not_choose_a_target_themselves() -> None:
    """One function chooses the target (`targets.for_project`); a task that branched on it would bypass it."""
    source = (ROOT / "src" / "trackstack" / "tasks.py").read_text(encoding="utf-8")
    assert "deploy_target" not in source
    assert "deployed(" not in source
