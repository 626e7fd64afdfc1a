"""The `.env` file on disk: reading it without side effects, and writing a newcomer's first one."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

from dotenv.parser import parse_stream

from trackstack.errors import TrackstackError
from trackstack.problems import Problem, SettingsError
from trackstack.settings import KEYS, OPTIONAL_KEYS, SECRET_KEYS, USER_SECRET_KEYS

_KEY_PREFIX = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")


def read_env_file(path: Path) -> tuple[dict[str, str], list[Problem]]:
    """Parse `.env` without interpolation or `os.environ` changes; report unparsable lines.

    A line that cannot be parsed is named by its number and key, never quoted: it may hold
    a secret (an unclosed quote swallows the lines after it).
    """
    if not path.is_file():
        raise SettingsError(
            path,
            [Problem(str(path.name), None, "file not found", "run `invoke init` to create it from .env.example")],
        )
    values: dict[str, str] = {}
    problems: list[Problem] = []
    with path.open(encoding="utf-8") as stream:
        for binding in parse_stream(stream):
            line_no = binding.original.line
            if binding.error:
                key = _KEY_PREFIX.match(binding.original.string)
                where = f"line {line_no}" + (f" ({key[1]}=...)" if key and key[1] in KEYS else "")
                problems.append(
                    Problem(
                        where,
                        None,
                        "cannot be parsed (an unclosed quote?)",
                        "write it as KEY=value, or start it with # to make it a comment",
                    )
                )
                continue
            if binding.key is None:
                continue  # blank line or comment
            if binding.value is None:
                # A word alone on a line may be a password that slipped: name only known keys.
                where = binding.key if binding.key in KEYS else f"line {line_no}"
                problems.append(Problem(where, None, f"has no '=' (line {line_no})", "write it as KEY=value"))
                continue
            if binding.key in values:
                problems.append(
                    Problem(binding.key, None, f"is set twice (again on line {line_no})", "keep one of the lines")
                )
            values[binding.key] = binding.value
    return values, problems


def fill_secrets(example: str, token: Callable[[], str] = lambda: secrets.token_urlsafe(24)) -> str:
    """Replace the value of every secret key in `.env.example` text with a new random token (not the
    secrets of other services, which the user brings)."""

    def replace(match: re.Match[str]) -> str:
        return f"{match['key']}={token()}"

    pattern = re.compile(rf"^(?P<key>{'|'.join(sorted(SECRET_KEYS - USER_SECRET_KEYS))})=.*$", re.MULTILINE)
    return pattern.sub(replace, example)


def missing_secrets(text: str, token: Callable[[], str] = lambda: secrets.token_urlsafe(24)) -> str:
    """`KEY=random` lines for the secret keys that `.env` text lacks (keys newer than the file); "" if none."""
    present = {match[1] for match in map(_KEY_PREFIX.match, text.splitlines()) if match}
    return "".join(f"{key}={token()}\n" for key in sorted(SECRET_KEYS - OPTIONAL_KEYS - present))


def add_missing_secrets(target: Path) -> list[str]:
    """Append fresh values for the required secrets an existing `.env` lacks; return their keys."""
    text = target.read_text(encoding="utf-8")
    lines = missing_secrets(text)
    if lines:
        separator = "" if not text or text.endswith("\n") else "\n"
        with target.open("a", encoding="utf-8", newline="\n") as stream:
            stream.write(
                f"{separator}# Added by `invoke init`: secrets of a newer trackstack (.env.example says what)\n{lines}"
            )
    return [line.partition("=")[0] for line in lines.splitlines()]


def create_env(example: Path, target: Path, *, force: bool = False) -> bool:
    """Write `target` (mode 600) from `example`; return False when it exists and `force` is off."""
    if target.exists() and not force:
        return False
    if not example.is_file():
        raise TrackstackError(f"{example} is missing; it is part of the checkout (git checkout {example.name}).")
    text = fill_secrets(example.read_text(encoding="utf-8"))
    temporary = target.with_name(f".{target.name}.{os.getpid()}.new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as stream:
        stream.write(text)
    os.chmod(temporary, 0o600)
    temporary.replace(target)
    return True
