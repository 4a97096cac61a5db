"""The configuration reference names every setting envoi reads."""

from __future__ import annotations

from pathlib import Path

from envoi.config import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    text = DOC.read_text()
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in text]
    assert not missing, f"undocumented in {DOC.name}: {missing}"
