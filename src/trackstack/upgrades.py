"""A new MLFLOW_VERSION on a deployed stack: a backup first, no old replica while the schema moves, a way back.

`invoke deploy` (Swarm, Kubernetes) asks the orchestrator which image MLflow's replicas run; the
image's tag names its MLflow version (`mlflow_image.image_ref`). When `.env` asks for another,
`upgrade` takes a backup as `invoke backup` does (its manifest names the running version), stops
every MLflow replica and waits until none runs (no writer on the old schema, as MLflow's upgrade
notes ask), runs the migration once, and leaves starting the new replicas to the deploy. A failed
migration restores that backup and starts the old replicas again; the error names the backup.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from trackstack import backups
from trackstack.console import say
from trackstack.errors import TrackstackError

# `<repository>:<MLflow version>-<12 hex digits of the build digest>`, as `mlflow_image.image_ref` tags it.
_TAG = re.compile(r"(?P<version>\d+\.\d+\.\d+)-[0-9a-f]{12}")


class UpgradeError(TrackstackError):
    """The migration to a new MLflow failed; the message says in what state it left the stack."""


def image_version(image: str) -> str | None:
    """The MLflow version of a trackstack MLflow image; None for an image tagged otherwise."""
    reference = image.split("@", 1)[0]  # a swarm service pins the digest: repo:tag@sha256:...
    _, colon, tag = reference.rpartition(":")
    match = _TAG.fullmatch(tag) if colon and "/" not in tag else None
    return match["version"] if match else None


def version_change(deployed_image: str | None, wanted: str) -> str | None:
    """The running replicas' MLflow version when `.env` asks for another; None when none runs or it is the same."""
    running = image_version(deployed_image) if deployed_image else None
    return running if running and running != wanted else None


def upgrade(data: backups.StackData, *, new_version: str, migrate: Callable[[], None], into: Path) -> Path:
    """Back up the running version's data, stop its replicas, `migrate` once; return the backup's folder.

    `data` is the stack as the running version sees it (its settings name that version, which the
    backup's manifest records). On success MLflow stays stopped: the caller starts the new replicas.
    On a failed migration the backup is restored and the old replicas start again, then UpgradeError.
    """
    old_version = data.settings.mlflow_version
    say(f"MLflow {old_version} runs, .env asks for {new_version}: backing up first, as `invoke backup` does")
    folder = backups.backup(data, into)
    say(f"backup written to {folder}; stopping MLflow {old_version}'s replicas: none may write while the schema moves")
    data.stop_mlflow()
    try:
        migrate()
    except Exception as error:
        cause = str(error).splitlines()[0] if str(error) else type(error).__name__
        say(f"the migration failed: restoring the backup {folder} and starting MLflow {old_version} again")
        try:
            backups.restore(data, folder, yes=True)
        except Exception as restore_error:
            raise UpgradeError(
                f"the migration to MLflow {new_version} failed ({cause}), and restoring the pre-upgrade backup "
                f"{folder} failed too ({str(restore_error).splitlines()[0]}). Fix: set MLFLOW_VERSION={old_version} "
                f"in .env, `invoke deploy`, then `invoke restore {folder} --yes`."
            ) from error
        raise UpgradeError(
            f"the migration to MLflow {new_version} failed; the pre-upgrade backup {folder} was restored and "
            f"MLflow {old_version} serves again. Cause: {cause}\n"
            f"Fix: read the migration's output above; until it is fixed, set MLFLOW_VERSION={old_version} in .env."
        ) from error
    return folder
