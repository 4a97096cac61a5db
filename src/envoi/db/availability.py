"""Which database errors mean "the database is not there now", as opposed to a bug in a statement.

A service whose promise rests on a SQL record turns these into `DatabaseUnavailableError` (HTTP 503:
ask again) with `or_unavailable`; anything else stays an error (HTTP 500: a bug to fix).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from envoi.errors import DatabaseUnavailableError

T = TypeVar("T")

#: A refused or dropped connection, a locked SQLite file, a full pool, a statement timeout.
DATABASE_DOWN_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    PoolTimeoutError,
    OSError,
    TimeoutError,
)


async def or_unavailable(call: Callable[[], Awaitable[T]], *, what: str) -> T:
    """`await call()`, with a database outage raised as `DatabaseUnavailableError` saying `what` could
    not be done."""
    try:
        return await call()
    except DATABASE_DOWN_ERRORS as exc:
        raise DatabaseUnavailableError(f"The database did not answer ({type(exc).__name__}): {what}") from exc
