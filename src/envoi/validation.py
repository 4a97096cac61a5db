"""Validation shared by every model that takes outside input (job data, API bodies).

U+0000 is refused in every string: PostgreSQL cannot store it in a text column, SMTP and Twilio have no
use for it, and finding out in a worker five retries later (or as a 500 on a filter) is worse than a
field-level error at the door.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, field_validator, model_validator

NUL = "\x00"
NUL_REASON = "must not contain NUL (U+0000) characters"


def contains_nul(value: Any) -> bool:
    """Whether a string, or any key or value nested in a dict or list, contains U+0000."""
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(contains_nul(item) for item in value)
    return False


class RejectsNul(BaseModel):
    """Base class: a NUL anywhere in a field's value fails that field's validation."""

    @field_validator("*", mode="after")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        if contains_nul(value):
            raise ValueError(NUL_REASON)
        return value

    @model_validator(mode="after")
    def _no_nul_in_extras(self) -> RejectsNul:
        # Keys a model keeps without declaring them (job metadata) are not fields: checked here.
        for key, value in (self.model_extra or {}).items():
            if contains_nul(key) or contains_nul(value):
                raise ValueError(f"{key!r} {NUL_REASON}")
        return self
