"""Invoke tasks: thin wrappers that validate `.env` once and call the plain functions.

Heavy modules (pydantic, jinja2, the MinIO SDK) are imported inside the tasks so that
`invoke --list` stays as quick as an empty collection.
"""

from __future__ import annotations

import contextlib
import functools
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import Task, task

from trackstack.errors import TrackstackError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from trackstack import auth
    from trackstack.problems import Problem
    from trackstack.project import Project
    from trackstack.validation import Policy

F = TypeVar("F", bound=Callable[..., Any])

# Tasks that start or change containers enforce the two policy checks and take these flags;
# the others say in their help that they skip them (tests/unit/test_tasks.py keeps this true).
POLICY_HELP = {
    "allow_weak_secrets": "accept well-known weak passwords (course demos only)",
    "allow_unpinned": "accept image references without a pinned tag, or 'latest'",
}
RELAXED_NOTE = "Skips the weak-secret and image-pinning checks: it starts nothing new."


def reports_errors(func: F) -> F:
    """Turn a `TrackstackError` (or a MinIO failure) into one message on stderr and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except TrackstackError as error:
            message = str(error)
        except KeyboardInterrupt:
            raise Exit("interrupted", code=130) from None
        except Exception as error:
            from trackstack.storage import explain, is_storage_failure

            if not is_storage_failure(error):
                raise
            message = explain(error, f"running `invoke {func.__name__}`")
        print(f"trackstack: error: {message}", file=sys.stderr, flush=True)
        raise Exit(code=1)

    return wrapper  # type: ignore[return-value]


def changes_state(func: F) -> F:
    """Run the task holding the project's lock: a second state-changing task waits for the first."""

    @functools.wraps(func)
    def wrapper(c: Context, *args: Any, **kwargs: Any) -> Any:
        from trackstack.task_lock import project_lock

        with project_lock(_root(c), func.__name__):
            return func(c, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


def _root(c: Context) -> Path:
    return Path(c.config.trackstack.root)


def _project(c: Context, policy: Policy, also: Callable[[Mapping[str, str]], list[Problem]] | None = None) -> Project:
    """Read and validate `.env` once; nothing is written or run before this succeeds.

    `also` checks what one task needs beyond a valid `.env`; its problems are reported with the others.
    """
    from trackstack.envfile import read_env_file
    from trackstack.paths import env_file
    from trackstack.project import Project
    from trackstack.validation import validate

    root = _root(c)
    path = env_file(root)
    values, problems = read_env_file(path)
    problems += also(values) if also else []
    return Project(root=root, env_file=path, settings=validate(values, path=path, policy=policy, problems=problems))


def _enforced(c: Context, allow_weak_secrets: bool, allow_unpinned: bool) -> Project:
    """The project for a task that starts or changes containers: both policy checks apply unless relaxed by flag."""
    from trackstack.validation import Policy

    return _project(c, Policy(allow_weak_secrets=allow_weak_secrets, allow_unpinned=allow_unpinned))


def _relaxed(c: Context) -> Project:
    """The project for a task that starts nothing new (see RELAXED_NOTE)."""
    from trackstack.validation import RELAXED

    return _project(c, RELAXED)


@task(help={"force": "replace an existing .env (its secrets are lost)"})
@reports_errors
def init(c: Context, force: bool = False) -> None:
    """Create .env from .env.example with random secrets."""
    from trackstack.envfile import add_missing_secrets, create_env
    from trackstack.paths import env_file

    root = _root(c)
    target = env_file(root)
    if create_env(root / ".env.example", target, force=force):
        print(f"trackstack: wrote {target} (mode 600) with new random passwords")
    elif added := add_missing_secrets(target):
        print(f"trackstack: kept {target} and added new random values for {', '.join(added)}")
    else:
        print(f"trackstack: keeping the existing {target} (--force replaces it)")


@task(help=POLICY_HELP)
@reports_errors
@changes_state
def render(c: Context, allow_weak_secrets: bool = False, allow_unpinned: bool = False) -> None:
    """Render compose.yaml, Dockerfile.mlflow and Dockerfile.pgadmin from .env."""
    from trackstack import targets

    targets.for_project(_enforced(c, allow_weak_secrets, allow_unpinned), "local").render()


@task(help={"force": "rebuild from scratch even if the images are current", **POLICY_HELP})
@reports_errors
@changes_state
def build(c: Context, force: bool = False, allow_weak_secrets: bool = False, allow_unpinned: bool = False) -> None:
    """Build the MLflow image and the compiled pgAdmin image if their Dockerfiles changed."""
    from trackstack import targets

    targets.for_project(_enforced(c, allow_weak_secrets, allow_unpinned), "local").build(force=force)


@task(
    default=True,
    help={"timeout": "seconds to wait for every service to be healthy (default 300)", **POLICY_HELP},
)
@reports_errors
@changes_state
def up(c: Context, timeout: int = 300, allow_weak_secrets: bool = False, allow_unpinned: bool = False) -> None:
    """Start the stack, wait until healthy, seed it, print URLs."""
    from trackstack import targets

    targets.for_project(_enforced(c, allow_weak_secrets, allow_unpinned), "local").up(timeout=timeout)


@task(help={"timeout": "seconds to wait for every service's replicas (default 600)", **POLICY_HELP})
@reports_errors
@changes_state
def deploy(c: Context, timeout: int = 600, allow_weak_secrets: bool = False, allow_unpinned: bool = False) -> None:
    """Deploy a shared server to Docker Swarm or Kubernetes (DEPLOY_TARGET), wait, print URLs."""
    from trackstack import targets
    from trackstack.validation import Policy

    policy = Policy(allow_weak_secrets=allow_weak_secrets, allow_unpinned=allow_unpinned)
    targets.for_project(_project(c, policy, also=targets.deploy_problems), "shared").up(timeout=timeout)


@task
@reports_errors
@changes_state
def undeploy(c: Context) -> None:
    """Remove the deployed stack's services (Swarm or Kubernetes); keep its volumes and secrets.

    Skips the weak-secret and image-pinning checks: it starts nothing new.
    """
    from trackstack import targets

    targets.for_project(_relaxed(c), "shared").down()


@task(help=POLICY_HELP)
@reports_errors
@changes_state
def seed(c: Context, allow_weak_secrets: bool = False, allow_unpinned: bool = False) -> None:
    """Create the MLflow bucket and register Postgres in pgAdmin."""
    from trackstack import targets

    targets.for_project(_enforced(c, allow_weak_secrets, allow_unpinned), "local").seed()


def _halting(name: str, summary: str, *, remove: bool) -> Task[Any]:
    """`invoke stop` and `invoke down`, which differ only in whether the containers go too."""

    def halt(c: Context) -> None:
        from trackstack import targets

        local = targets.for_project(_relaxed(c), "local")
        (local.down if remove else local.stop)()

    halt.__name__ = halt.__qualname__ = name
    halt.__doc__ = f"{summary}\n\n    {RELAXED_NOTE}\n    "
    return Task(reports_errors(changes_state(halt)), name=name)


stop = _halting("stop", "Stop the containers; keep everything else.", remove=False)
down = _halting("down", "Remove containers and network; keep the data.", remove=True)


@task(
    help={
        "yes": "delete without asking (required when not on a terminal)",
        "backup": "write a backup (see `invoke backup`) before deleting",
        **POLICY_HELP,
    }
)
@reports_errors
@changes_state
def reset(
    c: Context,
    yes: bool = False,
    backup: bool = False,
    allow_weak_secrets: bool = False,
    allow_unpinned: bool = False,
) -> None:
    """Delete all data (asks first) and start an empty stack."""
    from trackstack import targets

    local = targets.for_project(_enforced(c, allow_weak_secrets, allow_unpinned), "local")
    local.reset(yes=yes, backup_into=_backups_dir(c) if backup else None)


@task(help={"into": "folder for backups (default: backups/ in the project)"})
@reports_errors
@changes_state
def backup(c: Context, into: str = "") -> None:
    """Back up MLflow's database, its logins and artifacts of the running stack.

    Skips the weak-secret and image-pinning checks: it starts nothing new.
    """
    from trackstack import targets
    from trackstack.console import say

    folder = targets.for_project(_relaxed(c)).backup(Path(into) if into else _backups_dir(c))
    say(f"backup written to {folder}")


@task
@reports_errors
def backups(c: Context) -> None:
    """List the scheduled backups at BACKUP_DEST: time, size, MLflow version, verified or not.

    Skips the weak-secret and image-pinning checks: it starts nothing new.
    """
    from trackstack import scheduled_backups

    print(scheduled_backups.listing(_relaxed(c).settings))


@task(
    help={
        "path": "a backup folder written by `invoke backup` (on any target), or at BACKUP_DEST: `latest` (the "
        "newest verified), a backup's name (20261207T030000Z) or s3://bucket/prefix/<name>",
        "yes": "replace a stack that holds data without asking (required when not on a terminal)",
    }
)
@reports_errors
@changes_state
def restore(c: Context, path: str, yes: bool = False) -> None:
    """Restore a backup into the running stack (checked first; asks before replacing data).

    Skips the weak-secret and image-pinning checks: it starts nothing new.
    """
    from trackstack import scheduled_backups, targets
    from trackstack.console import say

    project = _relaxed(c)
    if scheduled_backups.is_destination_backup(path) and not Path(path).exists():
        with scheduled_backups.fetched(project.settings, path) as folder:
            say(f"fetched and verified {path} ({folder.name})")
            held = targets.for_project(project).restore(folder, yes=yes)
    else:
        held = targets.for_project(project).restore(Path(path), yes=yes)
    say(f"restored {held.text()}")


@task
@reports_errors
@changes_state
def gc(c: Context) -> None:
    """Remove runs deleted more than MLFLOW_GC_OLDER_THAN ago for good, with their artifacts, now.

    Skips the weak-secret and image-pinning checks: it starts nothing new.
    """
    from trackstack import targets

    targets.for_project(_relaxed(c)).gc()


def _backups_dir(c: Context) -> Path:
    return _root(c) / "backups"


@task
@reports_errors
def status(c: Context) -> None:
    """Show each service's state, health, URL and volume size (deployed: its replicas, ready/desired).

    Skips the weak-secret and image-pinning checks: it starts nothing new.
    """
    from trackstack import scheduled_backups, targets

    project = _relaxed(c)
    print(targets.for_project(project).status().text())
    late = scheduled_backups.lateness(project.settings)
    if late:
        print(f"warning: {late}")


@task(
    help={
        "service": "only this service (mlflow, pgadmin, minio, postgres; on Swarm also proxy)",
        "follow": "keep printing new lines",
        "tail": "lines per service to start with (default 100)",
    }
)
@reports_errors
def logs(c: Context, service: str = "", follow: bool = False, tail: int = 100) -> None:
    """Print the services' logs (on Kubernetes: its pods', through kubectl).

    Skips the weak-secret and image-pinning checks: it starts nothing new.
    """
    from trackstack import targets

    targets.for_project(_relaxed(c)).logs(service, follow=follow, tail=tail)


@task
@reports_errors
def urls(c: Context) -> None:
    """Print the URLs, and which .env keys hold each login.

    Skips the weak-secret and image-pinning checks: it starts nothing new.
    """
    from trackstack import targets

    targets.for_project(_relaxed(c)).print_urls()


@task(name="open")
@reports_errors
def open_uis(c: Context) -> None:
    """Open the MLflow, pgAdmin and MinIO UIs in the browser (on Kubernetes: port-forwards until Ctrl-C).

    Skips the weak-secret and image-pinning checks: it starts nothing new.
    """
    from trackstack import targets

    targets.for_project(_relaxed(c)).open_uis()


@contextlib.contextmanager
def _mlflow_server(project: Project) -> Iterator[auth.Server]:
    """MLflow of the project's target in use (`targets.for_project`)."""
    from trackstack import targets

    with targets.for_project(project).mlflow_server() as server:
        yield server


@task(name="add", help={"name": "the new login, e.g. student01"})
@reports_errors
def user_add(c: Context, name: str) -> None:
    """Add an MLflow login and print its generated password once (MLFLOW_AUTH=true).

    Skips the weak-secret and image-pinning checks: it starts nothing new.
    """
    from trackstack import auth

    project = _relaxed(c)
    with _mlflow_server(project) as server:
        password = auth.add_user(project.settings, name, server=server)
    print(f"trackstack: added MLflow user {name}; its password (shown only now): {password}", flush=True)
    print(f"trackstack: it logs in at {server.users_url}; from code: MLFLOW_TRACKING_USERNAME={name} "
          "MLFLOW_TRACKING_PASSWORD=<the password>", flush=True)  # fmt: skip


@task(name="list")
@reports_errors
def user_list(c: Context) -> None:
    """List the MLflow logins (MLFLOW_AUTH=true).

    Skips the weak-secret and image-pinning checks: it starts nothing new.
    """
    from trackstack import auth

    project = _relaxed(c)
    with _mlflow_server(project) as server:
        users = auth.list_users(project, server=server)
    for login, is_admin in users:
        print(f"{login}  (admin)" if is_admin else login)


@task(
    name="import",
    help={
        "roster": "a CSV file with a header row: username (or user, name), optional email and section",
        "out": "where the new passwords go (default: beside the roster, e.g. roster.passwords.csv)",
        "force": "replace an existing password file",
    },
)
@reports_errors
def user_import(c: Context, roster: str, out: str = "", force: bool = False) -> None:
    """Add an MLflow login for each student of a roster; their passwords go to a file (MLFLOW_AUTH=true).

    Logins that exist are kept. Skips the weak-secret and image-pinning checks: it starts nothing new.
    """
    from trackstack import auth, console
    from trackstack import roster as rosters

    project = _relaxed(c)
    auth.require_auth(project.settings)
    students = rosters.read(Path(roster), admin=project.settings.mlflow_admin_user)
    out_path = Path(out) if out else rosters.passwords_path(Path(roster))
    rosters.check_out(out_path, force=force)
    with _mlflow_server(project) as server:
        done = rosters.import_roster(
            students, lambda name: auth.create_user(project.settings, name, server=server), out_path,
            tracking_uri=server.users_url, force=force,
        )  # fmt: skip
    if done.created:
        console.say(f"created {len(done.created)} MLflow login(s); their passwords are in {out_path} "
                    "(only you may read it: hand each student their row, then delete it)")  # fmt: skip
    else:
        console.say("created no login; no password file was written")
    if done.kept:
        console.say(f"kept {len(done.kept)} login(s) that exist already; their passwords are unchanged")
    console.say(f"students log in at {server.users_url}")


@task(
    name="remove",
    help={
        "name": "the login to remove (with --roster: the roster file); experiments and runs stay",
        "roster": "NAME is a roster file (as for user.import): remove every login it lists",
    },
)
@reports_errors
def user_remove(c: Context, name: str, roster: bool = False) -> None:
    """Remove an MLflow login, or every login of a roster (MLFLOW_AUTH=true).

    Skips the weak-secret and image-pinning checks: it starts nothing new.
    """
    from trackstack import auth, console
    from trackstack import roster as rosters

    project = _relaxed(c)
    if not roster:
        with _mlflow_server(project) as server:
            auth.remove_user(project, name, server=server)
        console.say(f"removed MLflow user {name}; its experiments and runs stay")
        return
    auth.require_auth(project.settings)
    students = rosters.read(Path(name), admin=project.settings.mlflow_admin_user)
    with _mlflow_server(project) as server:
        done = rosters.remove_roster(students, lambda login: auth.delete_user(project, login, server=server))
    console.say(f"removed {len(done.removed)} MLflow login(s); their experiments and runs stay")
    if done.missing:
        console.say(f"{len(done.missing)} were not there: {', '.join(s.name for s in done.missing)}")


@task(help={"csv": "also write the report to this CSV file (bytes as numbers, for a spreadsheet)"})
@reports_errors
def report(c: Context, csv: str = "") -> None:
    """Show per student: runs, experiments, last activity and artifact bytes.

    Skips the weak-secret and image-pinning checks: it starts nothing new.
    """
    from trackstack import class_report, targets
    from trackstack.console import say, table

    project = _relaxed(c)
    settings = project.settings
    target = targets.for_project(project)
    runs = target.psql(class_report.RUNS_SQL)
    logins = target.psql(class_report.LOGINS_SQL, database=settings.mlflow_auth_db) if settings.mlflow_auth else None
    students = class_report.build(runs, logins, target.artifact_sizes(), bucket=settings.mlflow_bucket)
    print(table(class_report.table_rows(students)), flush=True)
    if not settings.mlflow_auth:
        say("experiments: '-' without logins (MLFLOW_AUTH=false): MLflow records no experiment's creator")
    if csv:
        Path(csv).write_text(class_report.to_csv(students), encoding="utf-8", newline="\n")
        say(f"wrote {csv}")


@task(help={"exclude_newer": "resolve as PyPI was on this date, YYYY-MM-DD (default: the lock's own, else today)"})
@reports_errors
def lock(c: Context, exclude_newer: str = "") -> None:
    """Write constraints/mlflow-<MLFLOW_VERSION>.txt: the MLflow image's pinned dependencies.

    Reads only MLFLOW_VERSION and MLFLOW_BASE_IMAGE from .env: the version need not have a lock yet.
    """
    from trackstack import dependency_lock
    from trackstack.envfile import read_env_file
    from trackstack.paths import env_file
    from trackstack.problems import Problem, SettingsError
    from trackstack.settings import describe, release_problem

    path = env_file(_root(c))
    values, _ = read_env_file(path)
    version, base_image = values.get("MLFLOW_VERSION", ""), values.get("MLFLOW_BASE_IMAGE", "")
    problem = release_problem(version)
    if problem:
        raise SettingsError(path, [Problem("MLFLOW_VERSION", repr(version), problem, describe("MLFLOW_VERSION"))])
    written, date = dependency_lock.write_lock(version, base_image, exclude_newer=exclude_newer or None)
    print(f"trackstack: wrote {written.name} (PyPI as of {date}); `invoke up` builds the image from it")


@task
@reports_errors
def doctor(c: Context) -> None:
    """Check Docker, ports, disk and .env (deployed: the swarm or the cluster); print a fix for each problem."""
    from trackstack import targets
    from trackstack.doctor import next_command, report, run_checks
    from trackstack.paths import env_file

    checks = run_checks(env_file(_root(c)), lambda project: targets.for_project(project).doctor_checks())
    print(report(checks))
    blockers = [check.name for check in checks if check.blocking]
    if blockers:
        raise TrackstackError(
            f"{len(blockers)} blocker(s): {', '.join(blockers)}; fix them and run `invoke doctor` again"
        )
    print(f"trackstack: ready for `invoke {next_command(checks)}`")


def namespace(root: Path) -> Collection:
    """The task collection for the project whose files live in `root`."""
    ns = Collection(
        init, render, build, up, seed, stop, down, reset, backup, backups, restore, status, logs, urls, open_uis,
        doctor, lock, report, deploy, undeploy, gc,
    )  # fmt: skip
    ns.add_collection(Collection("user", user_add, user_import, user_list, user_remove))
    ns.configure({"trackstack": {"root": str(root)}})
    return ns
