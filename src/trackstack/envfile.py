"""Writing `.env` for a newcomer: the documented example with fresh random secrets."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

from trackstack.errors import TrackstackError
from trackstack.settings import SECRET_KEYS


def fill_secrets(example: str, token: Callable[[], str] = lambda: secrets.token_urlsafe(24)) -> str:
    """Replace the value of every secret key in `.env.example` text with a new random token."""

    def replace(match: re.Match[str]) -> str:
        return f"{match['key']}={token()}"

    pattern = re.compile(rf"^(?P<key>{'|'.join(sorted(SECRET_KEYS))})=.*$", re.MULTILINE)
    return pattern.sub(replace, example)


def create_env(example: Path, target: Path, *, force: bool = False) -> bool:
    """Write `target` (mode 600) from `example`; return False when it exists and `force` is off."""
    if target.exists() and not force:
        return False
    if not example.is_file():
        raise TrackstackError(f"{example} is missing; it is part of the checkout (git checkout {example.name}).")
    text = fill_secrets(example.read_text(encoding="utf-8"))
    temporary = target.with_name(f".{target.name}.new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.chmod(temporary, 0o600)
    temporary.replace(target)
    return True
