"""Moving existing data to new versions: MLflow's schema is upgraded, what cannot be is refused.

MLflow keeps its schema revision in the `alembic_version` table and ships its migrations in
its package; a server refuses to start on an older schema. `before_start` runs between
"Postgres healthy" and "start MLflow": on older data it says both revisions, writes a backup
and runs `mlflow db upgrade` once in a one-shot container. A database newer than the image, or
a Postgres data directory of another major version, is refused before anything changes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from trackstack import database, engine
from trackstack.console import say
from trackstack.containers import backend_store_uri
from trackstack.errors import TrackstackError
from trackstack.project import Project
from trackstack.services import POSTGRES
from trackstack.targets.compose.state import wait_ready


def route(key: str) -> str:
    """What to do when data cannot move to the `.env` key's new value by itself (README, "Upgrading")."""
    return (
        f"Fix: set the previous {key} in .env again, `invoke up` and `invoke backup`; then set the new {key}, "
        "`invoke reset --yes` (deletes the data volumes) and `invoke restore PATH` (upgrades MLflow's schema)"
    )


# Asks the image which schema revisions its MLflow knows, from MLflow's own migration scripts.
_REVISIONS_SCRIPT = """
import importlib.util, json, os
from alembic.script import ScriptDirectory
package = os.path.dirname(importlib.util.find_spec("mlflow").origin)
scripts = ScriptDirectory(os.path.join(package, "store", "db_migrations"))
print(json.dumps({"head": scripts.get_current_head(), "known": [r.revision for r in scripts.walk_revisions()]}))
"""
# Image id -> revisions, so that only a new image is asked (a container start costs seconds).
CACHE = Path(".trackstack") / "schema-revisions.json"


class MigrationError(TrackstackError):
    """The data cannot be used by the configured versions; nothing was changed."""


@dataclass(frozen=True)
class Revisions:
    head: str
    known: frozenset[str]


def database_revision(project: Project) -> str | None:
    """The schema revision of MLflow's database, or None before MLflow created its tables."""
    # Postgres resolves table names before it runs a query: psql asks first, then reads only if it is there.
    found = database.psql(
        project,
        "SELECT to_regclass('public.alembic_version') IS NOT NULL AS present \\gset\n"
        "\\if :present\nSELECT version_num FROM alembic_version;\n\\endif\n",
    )
    return found.splitlines()[0] if found else None


def image_revisions(project: Project) -> Revisions:
    """The schema revisions the MLflow image can run on (its head) and upgrade from."""
    image = project.settings.mlflow_image
    image_id = engine.run(["docker", "image", "inspect", "--format", "{{.Id}}", image], capture=True).stdout.strip()
    cache_file = project.root / CACHE
    try:
        cache = json.loads(cache_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    if image_id not in cache:
        args = ["docker", "run", "--rm", "--network", "none", "--entrypoint", "python", image, "-c", _REVISIONS_SCRIPT]
        cache[image_id] = json.loads(engine.run(args, capture=True).stdout)
        cache_file.parent.mkdir(exist_ok=True)
        cache_file.write_text(json.dumps(cache, indent=1) + "\n", encoding="utf-8", newline="\n")
    return Revisions(head=cache[image_id]["head"], known=frozenset(cache[image_id]["known"]))


def upgrade_schema(project: Project, found: str, revisions: Revisions) -> None:
    """Run `mlflow db upgrade` once, in a one-shot container of the MLflow service."""
    started = time.monotonic()
    engine.compose(project, "run", "--rm", "--no-deps", "-T", "mlflow", "mlflow", "db", "upgrade",
                   backend_store_uri(project.settings.mlflow_db_user, project.settings.postgres_db),
                   capture=True)  # fmt: skip
    now = database_revision(project)
    if now != revisions.head:
        raise MigrationError(
            f"`mlflow db upgrade` left the schema at {now}, not {revisions.head}. {route('MLFLOW_VERSION')}."
        )
    say(f"schema upgraded from {found} to {revisions.head} in {time.monotonic() - started:.0f}s")


Step = Literal["none", "upgrade", "refuse"]


def step(found: str | None, revisions: Revisions) -> Step:
    """What data at schema revision `found` needs before the image's MLflow can serve it."""
    if found is None or found == revisions.head:
        return "none"  # None: an empty database, where MLflow creates its tables at the head itself
    return "upgrade" if found in revisions.known else "refuse"


def _pending_upgrade(project: Project) -> tuple[str, Revisions] | None:
    """The schema revision found and the image's, when an upgrade is due; refuses a newer schema."""
    found = database_revision(project)
    if found is None:
        return None  # no need to ask the image
    revisions = image_revisions(project)
    needed = step(found, revisions)
    if needed == "refuse":
        raise MigrationError(
            f"MLflow's database is at schema revision {found}, which MLflow {project.settings.mlflow_version} "
            "does not know: it was written by a newer MLflow, and MLflow cannot downgrade; nothing was changed. "
            f"{route('MLFLOW_VERSION')}."
        )
    return (found, revisions) if needed == "upgrade" else None


def before_start(project: Project, back_up: Callable[[Project, Path], Path]) -> None:
    """With Postgres healthy and MLflow not yet started: upgrade an older schema (after `back_up` wrote a
    backup), refuse a newer one."""
    pending = _pending_upgrade(project)
    if pending is None:
        return
    found, revisions = pending
    say(
        f"MLflow's database is at schema revision {found}; MLflow {project.settings.mlflow_version} "
        f"needs {revisions.head}: backing up, then upgrading"
    )
    # An older server may still be running on this data: it must not write while it moves.
    engine.compose(project, "stop", "mlflow", capture=True)
    wait_ready(project, services=("minio",))  # the backup copies the artifacts
    folder = back_up(project, project.root / "backups")
    say(f"backup written to {folder} (`invoke restore {folder}` with the old version goes back)")
    upgrade_schema(project, found, revisions)


def after_restore(project: Project) -> None:
    """With a backup's database restored and MLflow stopped: bring an older schema up to the image's."""
    pending = _pending_upgrade(project)
    if pending is not None:
        found, revisions = pending
        say(f"the restored database is at schema revision {found}; upgrading it to {revisions.head}")
        upgrade_schema(project, found, revisions)


def _running_image(project: Project, service: str) -> str:
    result = engine.run(
        ["docker", "ps", "--filter", f"label=com.docker.compose.project={project.name}",
         "--filter", f"label=com.docker.compose.service={service}", "--format", "{{.Image}}"],
        capture=True, check=False,
    )  # fmt: skip
    return result.stdout.strip()


def postgres_data_major(project: Project) -> str | None:
    """The Postgres major version that wrote the stack's data volume; None without one."""

    assert POSTGRES.volume is not None  # noqa: S101 - the table gives Postgres its volume
    volume = f"{project.name}_{POSTGRES.volume.name}"
    if volume not in engine.volumes(project):
        return None
    args = ["docker", "run", "--rm", "--network", "none", "--entrypoint", "cat", "-v", f"{volume}:/data:ro",
            project.settings.postgres_image, "/data/PG_VERSION"]  # fmt: skip
    result = engine.run(args, capture=True, check=False)
    return result.stdout.strip() or None


def image_postgres_major(image: str) -> str:
    """The Postgres major of an image, from the PG_MAJOR its Dockerfile sets."""
    env = engine.run(["docker", "image", "inspect", "--format", "{{json .Config.Env}}", image], capture=True).stdout
    for entry in json.loads(env or "[]") or []:
        key, _, value = entry.partition("=")
        if key == "PG_MAJOR":
            return str(value)
    return ""


def check_postgres_volume(project: Project) -> None:
    """Before Postgres starts: refuse a data volume written by another Postgres major version."""
    image = project.settings.postgres_image
    if engine.run(["docker", "image", "inspect", image], capture=True, check=False).returncode != 0:
        return  # not pulled yet: checked on the next `up`, before a start could touch the data
    if _running_image(project, "postgres") == image:
        return  # that image already runs on this volume
    data_major = postgres_data_major(project)
    image_major = image_postgres_major(image)
    if data_major and image_major and data_major != image_major:
        raise MigrationError(
            f"the Postgres data volume was written by PostgreSQL {data_major}, but POSTGRES_IMAGE={image} is "
            f"PostgreSQL {image_major}, which cannot read it; nothing was started or changed. "
            f"{route('POSTGRES_IMAGE')}."
        )
