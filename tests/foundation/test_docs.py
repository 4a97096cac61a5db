"""The configuration reference names every setting envoi reads."""

from __future__ import annotations

from pathlib import Path

from pydantic import AliasChoices

from envoi.config import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_is_documented() -> None:
    """Every setting, and every other name it is read under (`SMS_FROM` for `TWILIO_PHONE_NUMBER`)."""
    text = DOC.read_text()
    names = list(Settings.model_fields)
    for field in Settings.model_fields.values():
        if isinstance(field.validation_alias, AliasChoices):
            names.extend(str(choice) for choice in field.validation_alias.choices)
    missing = [name.upper() for name in names if f"`{name.upper()}`" not in text]
    assert not missing, f"undocumented in {DOC.name}: {missing}"
