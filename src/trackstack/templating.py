"""The one Jinja environment every target renders its templates with: settings in, text out."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import jinja2

from trackstack.paths import TEMPLATES


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
    # A JSON list is a YAML flow sequence; unlike `tojson` this leaves quotes unescaped.
    env.filters["json"] = json.dumps
    # A macro's output without its last line break, where the caller's line supplies one.
    env.filters["rstrip"] = str.rstrip
    return env


def render_template(template: str, **context: object) -> str:
    return environment().get_template(template).render(**context)


def template_text(name: str) -> str:
    """A file under templates/ as it is (a script a container runs, say)."""
    return (TEMPLATES / name).read_text(encoding="utf-8")
