from __future__ import annotations

import stat
from pathlib import Path

from tests.conftest import ROOT
from trackstack.envfile import create_env
from trackstack.settings import SECRET_KEYS, USER_SECRET_KEYS
from trackstack.validation import load_settings


def test_init_writes_a_valid_private_env(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    assert create_env(ROOT / ".env.example", target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    settings = load_settings(target)  # strong secrets: no --allow-weak-secrets needed
    secrets = settings.secret_values()
    assert len(set(secrets)) == len(SECRET_KEYS - USER_SECRET_KEYS)
    assert all(len(secret) >= 24 for secret in secrets)


def test_init_never_overwrites_without_force(tmp_path: Path) -> None:
    target = tmp_path / ".env"
    target.write_text("KEEP=me\n")
    assert not create_env(ROOT / ".env.example", target)
    assert target.read_text() == "KEEP=me\n"
    assert create_env(ROOT / ".env.example", target, force=True)
    assert "KEEP=me" not in target.read_text()


def test_two_runs_give_different_secrets(tmp_path: Path) -> None:
    first, second = tmp_path / "a", tmp_path / "b"
    create_env(ROOT / ".env.example", first)
    create_env(ROOT / ".env.example", second)
    assert load_settings(first).secret_values() != load_settings(second).secret_values()
