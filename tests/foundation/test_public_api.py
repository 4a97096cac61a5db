"""`envoi.__all__` is the public surface: sorted, complete, and every name importable."""

from __future__ import annotations

import envoi


def isort_style(name: str) -> tuple[int, str]:
    """Ruff's RUF022 order: CONSTANTS, then Classes, then functions."""
    return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)


def test_all_is_sorted_and_importable() -> None:
    assert envoi.__all__ == sorted(envoi.__all__, key=isort_style)
    for name in envoi.__all__:
        assert getattr(envoi, name) is not None


def test_every_public_attribute_is_exported() -> None:
    public = {
        name
        for name, value in vars(envoi).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("envoi")
    }
    assert public <= set(envoi.__all__), public - set(envoi.__all__)
