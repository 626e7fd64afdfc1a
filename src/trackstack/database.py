"""MLflow's database, reached through the Postgres container's own client tools.

The tools run inside the container over its local socket, which the image trusts, so no
password is needed and none reaches a command line; SQL and dumps travel on stdin/stdout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO

from trackstack import backup_format, engine
from trackstack.project import Project


def tool_args(project: Project, tool: str, *options: str, database: str | None = None) -> list[str]:
    """`docker compose exec` arguments that run a Postgres client tool as the `.env` user."""
    settings = project.settings
    return [
        "exec",
        "-T",
        "postgres",
        tool,
        *options,
        "-U",
        settings.postgres_user,
        "-d",
        database or settings.postgres_db,
    ]


def psql(project: Project, sql: str, *, database: str | None = None) -> str:
    """Run SQL (on stdin) and return the unaligned, tuples-only output."""
    options = ("--no-psqlrc", "--quiet", "-tA", "-v", "ON_ERROR_STOP=1")
    result = engine.compose(project, *tool_args(project, "psql", *options, database=database), capture=True,
                            input_text=sql)  # fmt: skip
    return result.stdout.strip()


# pg_dump and pg_restore as every target runs them: a custom-format dump, restored all or nothing and owned
# by whoever restores it (a backup of one stack restores into another, whose POSTGRES_USER may differ).
DUMP_OPTIONS = backup_format.DUMP_OPTIONS
RESTORE_OPTIONS = ("--no-owner", "--no-privileges", "--exit-on-error", "--single-transaction")


def dump(project: Project, out: IO[bytes], *, database: str | None = None) -> None:
    """pg_dump of MLflow's database (or `database`) in the custom format."""
    engine.compose_stream(project, *tool_args(project, "pg_dump", *DUMP_OPTIONS, database=database), stdout=out)


def load(project: Project, dump_file: IO[bytes], *, database: str) -> None:
    """pg_restore a custom-format dump into `database`, all or nothing."""
    engine.compose_stream(project, *tool_args(project, "pg_restore", *RESTORE_OPTIONS, database=database),
                          stdin=dump_file)  # fmt: skip


def literal(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def sync_password(project: Project) -> None:
    """Make Postgres accept the password in .env, which its image only reads on first start."""
    psql(
        project,
        f"ALTER ROLE CURRENT_USER WITH PASSWORD {literal(project.settings.postgres_password.get_secret_value())};\n",
    )


def identifier(name: str) -> str:
    """A SQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


# Connect here to create, drop and rename MLflow's database: Postgres cannot rename the
# database a session is connected to. The image always creates it.
MAINTENANCE_DB = "postgres"

# How a caller runs SQL in a stack's Postgres, whichever way it reaches it: (sql, database=...) -> output.
RunSql = Callable[..., str]


def create_database(run_sql: RunSql, name: str) -> None:
    run_sql(f"CREATE DATABASE {identifier(name)};\n", database=MAINTENANCE_DB)


def drop_database(run_sql: RunSql, name: str) -> None:
    run_sql(f"DROP DATABASE IF EXISTS {identifier(name)} WITH (FORCE);\n", database=MAINTENANCE_DB)


def database_exists(run_sql: RunSql, name: str) -> bool:
    query = f"SELECT 1 FROM pg_database WHERE datname = {literal(name)};\n"  # noqa: S608 - a literal()-quoted name
    return bool(run_sql(query, database=MAINTENANCE_DB))


def rename_databases(run_sql: RunSql, *renames: tuple[str, str]) -> None:
    """Rename databases in one transaction: all renames happen, or none.

    Sessions still connected to a renamed database (pgAdmin's, say) are ended first:
    Postgres refuses to rename a database in use.
    """
    names = ", ".join(literal(old) for old, _ in renames)
    statements = [
        "BEGIN;",
        f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname IN ({names})"  # noqa: S608 - names are literal()-quoted
        " AND pid <> pg_backend_pid();",
        *(f"ALTER DATABASE {identifier(old)} RENAME TO {identifier(new)};" for old, new in renames),
        "COMMIT;",
    ]
    run_sql("\n".join(statements) + "\n", database=MAINTENANCE_DB)
