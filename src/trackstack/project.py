"""A project: where a stack lives on disk and what its validated `.env` says."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trackstack.paths import COMPOSE_FILE
from trackstack.settings import Settings


@dataclass(frozen=True)
class Project:
    """Where a stack lives on disk and what `.env` says about it."""

    root: Path
    env_file: Path
    settings: Settings

    @property
    def compose_file(self) -> Path:
        return self.root / COMPOSE_FILE

    @property
    def name(self) -> str:
        return self.settings.compose_project_name
