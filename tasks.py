"""trackstack tasks: `invoke --list` shows them, `invoke --help TASK` explains one."""

from pathlib import Path

from trackstack.tasks import namespace

ns = namespace(Path(__file__).resolve().parent)
