"""`envoi api` refuses to start when it would serve an open API publicly, or on a database behind."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from envoi.cli import app


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("ENVOI_API_KEY", "ENVOI_ADMIN_TOKEN", "ENVOI_HOST", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no .env file
    return tmp_path


def test_no_key_refuses_a_public_bind(env: Path) -> None:
    result = CliRunner().invoke(app, ["api", "--host", "0.0.0.0"])
    assert result.exit_code == 2
    assert "ENVOI_API_KEY and ENVOI_ADMIN_TOKEN not set" in result.output
    assert "127.0.0.1" in result.output


def test_database_behind_refuses_to_start(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{env / 'behind.db'}")
    result = CliRunner().invoke(app, ["api", "--host", "127.0.0.1"])
    assert result.exit_code == 2
    assert "run `envoi migrate`" in result.output
