"""Logins that an image reads only on first start, made to follow `.env` on every `invoke up`.

pgAdmin creates its login from PGADMIN_DEFAULT_EMAIL / PGADMIN_DEFAULT_PASSWORD only when its
config database is new. After that, `.env` and pgAdmin drift apart silently; so `invoke up`
keeps a salted fingerprint of the login last applied in pgAdmin's data volume and, when `.env`
no longer matches it, sets the password with pgAdmin's own `setup.py` (adding the user as an
administrator when the e-mail is new). The password travels on stdin, never on a command line.

(MinIO needs nothing of the kind: it takes MINIO_ROOT_USER / MINIO_ROOT_PASSWORD from its
environment on every start, and Compose recreates it when they change. Postgres is
`database.sync_password`'s job.)
"""

from __future__ import annotations

import hashlib
import secrets

from trackstack import engine
from trackstack.containers import PGADMIN_PYTHON
from trackstack.errors import TrackstackError
from trackstack.project import Project
from trackstack.targets.compose.seed import PGADMIN_SETUP

FINGERPRINT = "/var/lib/pgadmin/trackstack-login"
# Runs in the pgAdmin container: stdin holds the e-mail, a newline, the password.
_APPLY_LOGIN = f"""
import contextlib, io, runpy, sys
email, password = sys.stdin.read().split("\\n", 1)
def setup(*args):
    sys.argv = ["setup.py", *args]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
        runpy.run_path("{PGADMIN_SETUP}", run_name="__main__")
    return out.getvalue()
said = setup("update-user", email, "--password", password, "--admin")
if "not found" in said.lower():
    said = setup("add-user", email, password, "--admin")
if "wrong" in said.lower() or "must be" in said.lower() or "does not exist" in said.lower():
    sys.exit(said.strip()[:300])
"""


class CredentialsError(TrackstackError):
    """A login in `.env` could not be applied to its service."""


def fingerprint(email: str, password: str, salt: str) -> str:
    digest = hashlib.sha256(f"{salt}\0{email}\0{password}".encode()).hexdigest()
    return f"{salt} {digest}"


def _exec(project: Project, *args: str, input_text: str | None = None) -> str:
    return engine.compose(project, "exec", "-T", "pgadmin", *args, capture=True, input_text=input_text).stdout


def apply_pgadmin_login(project: Project, *, new_volume: bool = False) -> str | None:
    """Make pgAdmin's login the one in `.env`; say what changed, or None when it already was.

    `new_volume`: pgAdmin has just created its data from `.env` itself, so only the
    fingerprint needs writing (no `setup.py` run on a first start).
    """
    settings = project.settings
    email, password = settings.pgadmin_default_email, settings.pgadmin_default_password.get_secret_value()
    applied = "" if new_volume else _exec(project, "sh", "-c", f'cat "{FINGERPRINT}" 2>/dev/null || true').strip()
    salt = applied.split(" ", 1)[0] if applied else secrets.token_hex(8)
    if new_volume:
        _remember(project, fingerprint(email, password, salt))
        return None
    if applied == fingerprint(email, password, salt):
        return None
    try:
        _exec(project, PGADMIN_PYTHON, "-c", _APPLY_LOGIN, input_text=f"{email}\n{password}")
    except engine.DockerError as error:
        raise CredentialsError(
            "pgAdmin did not take the login PGADMIN_DEFAULT_EMAIL / PGADMIN_DEFAULT_PASSWORD from .env. "
            "Fix: check both keys (`invoke doctor`), then run `invoke up` again.\n"
            + "\n".join(str(error).splitlines()[1:])
        ) from None
    _remember(project, fingerprint(email, password, salt))
    return "pgAdmin: login PGADMIN_DEFAULT_EMAIL / PGADMIN_DEFAULT_PASSWORD from .env applied"


def _remember(project: Project, applied: str) -> None:
    """Keep the fingerprint of the login just applied in pgAdmin's data volume (mode 600)."""
    _exec(project, "sh", "-c", f'umask 077 && cat > "{FINGERPRINT}"', input_text=applied)
