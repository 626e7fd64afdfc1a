"""The one Jinja environment every target renders its templates with: settings in, text out."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

import jinja2

from trackstack.paths import TEMPLATES

# What a Caddyfile token may hold bare. Caddy expands `{...}` placeholders and `{$VAR}` even
# inside quotes, and white space, quotes, `#` and braces are its syntax: such a value cannot be
# quoted safely, so it is refused (settings validation refuses it first, with the `.env` key).
_CADDY_TOKEN = re.compile(r"^[A-Za-z0-9*.:/_-]+$")
_CADDY_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+$")
# What a Dockerfile may hold as one bare word (FROM's image, USER, a requirement in double quotes):
# FROM and USER have no quoting, so a value with white space, quotes, `$`, `\` or `#` is refused.
_DOCKERFILE_WORD = re.compile(r"^[A-Za-z0-9._:/@\[\]=+-]+$")


class UnsafeValueError(ValueError):
    """A value that the file being rendered cannot hold without changing its structure."""


def yaml_scalar(value: object) -> str:
    """Any value as a JSON scalar, which YAML reads back exactly: a double-quoted string (quotes,
    backslashes, line breaks and every non-ASCII character, U+2028 and U+0085 too, escaped),
    a number or a boolean. A JSON list or mapping is a YAML flow collection."""
    return json.dumps(value, ensure_ascii=True)


def caddy_token(value: object) -> str:
    """A value as one bare Caddyfile token, or an error: nothing in it may be Caddyfile syntax."""
    text = str(value)
    if not _CADDY_TOKEN.fullmatch(text):
        raise UnsafeValueError(f"{text!r} cannot be written as a Caddyfile token")
    return text


def caddy_email(value: object) -> str:
    """An e-mail address as one bare Caddyfile token (`@` only inside it), or an error."""
    text = str(value)
    if not _CADDY_EMAIL.fullmatch(text):
        raise UnsafeValueError(f"{text!r} cannot be written as a Caddyfile e-mail address")
    return text


def dockerfile_word(value: object) -> str:
    """A value as one bare Dockerfile word, or an error."""
    text = str(value)
    if not _DOCKERFILE_WORD.fullmatch(text):
        raise UnsafeValueError(f"{text!r} cannot be written as one word of a Dockerfile")
    return text


@cache
def environment(templates: Path = TEMPLATES) -> jinja2.Environment:
    """The single Jinja environment: a missing variable is an error, never an empty string."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(templates),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,  # noqa: S701 - YAML, Dockerfile and JSON, never HTML
    )
    # Every value in a YAML or JSON file goes through this one filter (yaml_scalar): a JSON list
    # is a YAML flow sequence; unlike `tojson` it leaves `'` `<` `>` `&` unescaped.
    env.filters["json"] = yaml_scalar
    env.filters["caddy"] = caddy_token
    env.filters["caddy_email"] = caddy_email
    env.filters["word"] = dockerfile_word
    # A macro's output without its last line break, where the caller's line supplies one.
    env.filters["rstrip"] = str.rstrip
    return env


def render_template(template: str, **context: object) -> str:
    return environment().get_template(template).render(**context)


def template_text(name: str) -> str:
    """A file under templates/ as it is (a script a container runs, say)."""
    return (TEMPLATES / name).read_text(encoding="utf-8")
