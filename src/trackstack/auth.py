"""MLflow's logins (MLFLOW_AUTH=true): `invoke user.add`, `list` and `remove`.

Adding and removing go through MLflow's own auth REST API as the admin from `.env`, so MLflow
hashes the passwords and checks the admin's rights. MLflow has no API that lists users, so
`list` reads the logins database (`<POSTGRES_DB>_auth`, created by the MLflow container at
start, templates/mlflow/start_with_auth.py) through the Postgres container.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from trackstack import database
from trackstack.errors import TrackstackError
from trackstack.project import Project
from trackstack.settings import Settings

# How a task reaches the logins database: (project, SQL, database) -> psql's unaligned output.
Psql = Callable[..., str]

USERS_API = "/api/2.0/mlflow/users"
_LOGIN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
LOGIN_RULE = "1-64 letters, digits, '_', '.', '@' or '-', starting with a letter or digit"


class AuthError(TrackstackError):
    """MLflow's logins could not be changed or read."""


def require_auth(settings: Settings) -> None:
    if not settings.mlflow_auth:
        raise AuthError(
            "MLflow runs without logins (MLFLOW_AUTH=false), so it has no users. Fix: set MLFLOW_AUTH=true, "
            "MLFLOW_ADMIN_PASSWORD and MLFLOW_FLASK_SERVER_SECRET_KEY in .env and run `invoke up` "
            "(`invoke deploy` for a deployed stack)."
        )


def is_login(name: str) -> bool:
    """Whether MLflow takes `name` as a login here (LOGIN_RULE)."""
    return bool(_LOGIN.fullmatch(name))


def _check_login(name: str) -> None:
    if not is_login(name):
        raise AuthError(f"{name!r} is not a login name. Fix: use {LOGIN_RULE}, e.g. student01.")


@dataclass(frozen=True)
class Server:
    """Where the tasks reach MLflow and its logins database: the compose stack's, or a deployed one's."""

    url: str
    verify: bool | str = True  # a CA certificate's path for a server with its own CA
    psql: Psql = database.psql
    host: str = ""  # the Host header to send where the URL's is none MLflow answers (a port-forward)
    login_url: str = ""  # where people log in, where the tasks reach MLflow another way
    apply: str = "invoke up"  # the task that applies .env to this server's MLflow

    @property
    def users_url(self) -> str:
        return self.login_url or self.url


def local_server(settings: Settings, verify: bool | str = True) -> Server:
    """The compose stack's MLflow; in LAN mode (HTTPS through the proxy, `verify`: trackstack's CA file, or
    True) students log in at its first public name, not this machine's."""
    names = [host for host in settings.public_hosts if not host.startswith("*")]
    shared = names and not settings.mlflow_is_private
    login_url = f"https://{names[0]}:{settings.ports['MLFLOW_PORT']}" if shared else ""
    # A certificate of .env's (or a public one) is for the public names only, not for 127.0.0.1.
    url = login_url if shared and verify is True else settings.mlflow_url
    return Server(url, verify=verify, login_url=login_url)


def _call(settings: Settings, server: Server, method: str, path: str, payload: dict[str, Any]) -> requests.Response:
    url = f"{server.url}{USERS_API}{path}"
    admin = (settings.mlflow_admin_user, settings.mlflow_admin_password.get_secret_value())
    try:
        headers = {"Host": server.host} if server.host else None
        response = requests.request(method, url, json=payload, auth=admin, headers=headers, timeout=30,
                                    verify=server.verify)  # fmt: skip
    except requests.RequestException as error:
        raise AuthError(
            f"MLflow did not answer at {server.url} ({type(error).__name__}). "
            f"Fix: run `{server.apply}` (`invoke status` shows whether MLflow is healthy), then retry."
        ) from None
    if response.status_code == 401:
        raise AuthError(
            f"MLflow refused the admin login MLFLOW_ADMIN_USER={settings.mlflow_admin_user} / MLFLOW_ADMIN_PASSWORD "
            f"from .env. Fix: run `{server.apply}`, which makes the admin's password the one in .env, then retry."
        )
    if response.status_code == 403:
        raise AuthError(
            f"MLflow says {settings.mlflow_admin_user} (MLFLOW_ADMIN_USER) is not an admin. "
            f"Fix: run `{server.apply}`, which makes MLFLOW_ADMIN_USER an admin, then retry."
        )
    return response


def _error(response: requests.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "", response.text.strip()[:200]
    return str(body.get("error_code", "")), str(body.get("message", ""))[:200]


def _refused(verb: str, name: str, response: requests.Response) -> AuthError:
    code, message = _error(response)
    return AuthError(
        f"MLflow refused to {verb} user {name} ({response.status_code} {code}: {message}). "
        "Fix: `invoke logs --service mlflow` says why."
    )


def add_user(
    settings: Settings,
    name: str,
    *,
    new_password: Callable[[], str] = secrets.token_urlsafe,
    server: Server | None = None,
) -> str:
    """Create login `name` with a generated password; return the password (shown once, stored hashed)."""
    password = create_user(settings, name, new_password=new_password, server=server)
    if password is None:
        raise AuthError(
            f"MLflow already has a user {name}. Fix: pick another name, or `invoke user.remove {name}` first."
        )
    return password


def create_user(
    settings: Settings,
    name: str,
    *,
    new_password: Callable[[], str] = secrets.token_urlsafe,
    server: Server | None = None,
) -> str | None:
    """Create login `name` with a generated password and return it; None if MLflow has that login already."""
    require_auth(settings)
    _check_login(name)
    password = new_password()
    response = _call(
        settings, server or local_server(settings), "POST", "/create", {"username": name, "password": password}
    )
    if response.ok:
        return password
    if _error(response)[0] == "RESOURCE_ALREADY_EXISTS":
        return None
    raise _refused("add", name, response)


def remove_user(project: Project, name: str, *, server: Server | None = None) -> None:
    """Delete login `name`; its experiments and runs stay."""
    if not delete_user(project, name, server=server):
        raise AuthError(f"MLflow has no user {name}. Fix: `invoke user.list` shows the users.")


def delete_user(project: Project, name: str, *, server: Server | None = None) -> bool:
    """Delete login `name` (its experiments and runs stay); False if MLflow has no such login."""
    settings = project.settings
    server = server or local_server(settings)
    require_auth(settings)
    _check_login(name)
    if name == settings.mlflow_admin_user:
        raise AuthError(
            f"{name} is the admin of .env (MLFLOW_ADMIN_USER); it is not removed. "
            f"Fix: set another MLFLOW_ADMIN_USER and run `{server.apply}` first."
        )
    _drop_permissions(project, name, server.psql)
    response = _call(settings, server, "DELETE", "/delete", {"username": name})
    if response.ok:
        return True
    if _error(response)[0] == "RESOURCE_DOES_NOT_EXIST":
        return False
    raise _refused("remove", name, response)


# Tables of a user's rights on single experiments, models and scorers (created by MLflow 3.x).
_PERMISSION_TABLES = ("experiment_permissions", "registered_model_permissions", "scorer_permissions")


def _drop_permissions(project: Project, name: str, psql: Psql) -> None:
    """Delete the user's per-resource rights first: MLflow 3.8's delete fails on them (a NOT NULL user_id)."""
    user = f"(SELECT id FROM users WHERE username = {database.literal(name)})"  # noqa: S608 - a quoted literal
    statements = [
        f"DO $$ BEGIN IF to_regclass('public.{table}') IS NOT NULL THEN "  # noqa: S608 - constant table names
        f"DELETE FROM {table} WHERE user_id = {user}; END IF; END $$;"
        for table in _PERMISSION_TABLES
    ]
    psql(project, "\n".join(statements) + "\n", database=project.settings.mlflow_auth_db)


def list_users(project: Project, *, server: Server | None = None) -> list[tuple[str, bool]]:
    """Every login and whether it is an admin, by name."""
    require_auth(project.settings)
    rows = (server or local_server(project.settings)).psql(
        project, "SELECT username, is_admin FROM users ORDER BY username;\n", database=project.settings.mlflow_auth_db
    )
    return [(name, flag == "t") for name, _, flag in (row.partition("|") for row in rows.splitlines() if row)]
