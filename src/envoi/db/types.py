"""Column types that behave the same on SQLite and PostgreSQL, and the JSON codec of every JSON column."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Dialect
from sqlalchemy.types import TypeDecorator
from ulid import ULID

from envoi.validation import TOO_DEEP_MARKER, json_safe


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime; SQLite hands back naive values, which are UTC by construction."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A ULID: unique, and sortable by creation time (cursor pagination relies on that)."""
    return str(ULID())


def json_dumps(value: Any) -> str:
    """How every JSON column is written: strict JSON (PostgreSQL's `json` refuses NaN), valid UTF-8.

    What fails that (a refused job's data kept as a dead letter) is stored as `json_safe` makes it."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
        text.encode("utf-8")
    except (ValueError, RecursionError):  # UnicodeEncodeError is a ValueError
        text = json.dumps(json_safe(value), ensure_ascii=False, allow_nan=False)
    return text


def json_loads(text: str | bytes) -> Any:
    """How every JSON column is read: any row, however it was written, comes back encodable.

    A value nested too deep for Python's parser (only a hand-written row can be) reads as a marker."""
    try:
        value = json.loads(text)
    except RecursionError:
        return TOO_DEEP_MARKER
    return json_safe(value)
