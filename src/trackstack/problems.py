"""How trackstack words what is wrong with `.env`: one line per problem, every secret masked."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from trackstack.errors import TrackstackError
from trackstack.settings import SECRET_KEYS


@dataclass(frozen=True)
class Problem:
    """One thing wrong with `.env`, phrased for the person who has to fix it."""

    key: str
    value: str | None  # already masked where it is a secret
    reason: str
    fix: str

    def __str__(self) -> str:
        shown = f"{self.key}={self.value}" if self.value is not None else self.key
        return f"{shown}: {self.reason}. Fix: {self.fix}."


class SettingsError(TrackstackError):
    """`.env` is unusable; carries every problem found."""

    def __init__(self, path: Path, problems: list[Problem]) -> None:
        self.path = path
        self.problems = problems
        count = f"{len(problems)} problem" + ("s" if len(problems) != 1 else "")
        lines = [f"{path} has {count}; nothing was changed:"]
        lines += [f"  - {problem}" for problem in problems]
        super().__init__("\n".join(lines))


def mask(key: str, value: str) -> str:
    """Show a value in an error message, hiding secrets but keeping a hint of their shape."""
    if key in SECRET_KEYS:
        return f"<hidden, {len(value)} characters>"
    return repr(value)


def dedupe(problems: list[Problem]) -> list[Problem]:
    """One line per key and reason, in the order found."""
    seen: set[tuple[str, str]] = set()
    unique = []
    for problem in problems:
        marker = (problem.key, problem.reason)
        if marker not in seen:
            seen.add(marker)
            unique.append(problem)
    return unique
