"""`invoke backup` and `invoke restore` on the stack deployed to Kubernetes: one backup, one restore."""

from __future__ import annotations

from pathlib import Path

from tests.swarm.conftest import Deployed
from tests.swarm.test_backup import round_trip


def test_a_backup_restores_a_deleted_run_and_a_removed_login(deployed: Deployed, tmp_path: Path) -> None:
    round_trip(deployed, tmp_path, "kubernetes")
