"""The docs hold: the configuration reference names every setting, the guarantees name real tests."""

from __future__ import annotations

import re
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


GUARANTEES = DOC.with_name("guarantees.md")


def test_every_proof_in_the_guarantees_names_a_test_that_exists() -> None:
    """`path::name` and `::name` (the last path named before it) in docs/guarantees.md: each is a test."""
    root = DOC.parents[1]
    text = GUARANTEES.read_text()
    path: str | None = None
    checked, missing = 0, []
    for match in re.finditer(r"`(tests/[\w/]+\.py)?::(\w+)`", text):
        path = match.group(1) or path
        assert path is not None, f"::{match.group(2)} before any test file is named"
        source = (root / path).read_text() if (root / path).exists() else ""
        if not re.search(rf"^(async )?def {match.group(2)}\(", source, re.MULTILINE):
            missing.append(f"{path}::{match.group(2)}")
        checked += 1
    assert checked > 30
    assert not missing, missing
