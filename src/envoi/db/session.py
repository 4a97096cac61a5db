"""Engines and sessions. `DATABASE_URL` names a database; the drivers are chosen here.

SQLite runs through aiosqlite (async) and the stdlib driver (migrations); PostgreSQL through psycopg 3,
which serves both.

`DATABASE_SCHEMA` puts envoi's tables in a PostgreSQL schema of their own (beside another application's
tables of the same names, such as the original NestJS system's `failed_jobs`). The models stay
schema-free: every engine translates their schema (None) to the configured one (`schema_options`), so
the same models serve SQLite, where the setting is ignored, and any schema. Unset, unqualified names
follow the connection's search_path (`public` on a fresh database).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from envoi.db.types import json_dumps, json_loads


def normalize_url(url: str, *, asynchronous: bool) -> URL:
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite" if asynchronous else "sqlite")
    raise ValueError(f"unsupported database {backend!r}")


def schema_options(url: URL, schema: str | None) -> dict[str, Any]:
    """Execution options placing the models' tables in `schema` (PostgreSQL only; SQLite has none)."""
    if schema is None or url.get_backend_name() != "postgresql":
        return {}
    return {"schema_translate_map": {None: schema}}


def ensure_sqlite_dir(url: URL) -> None:
    """A SQLite file under ./var/ should not need a manual mkdir."""
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the API read while the worker writes; busy_timeout waits on a lock instead of failing.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


class Database:
    """One async engine and its session factory; `session()` is a unit of work that commits on exit."""

    def __init__(self, url: str, *, schema: str | None = None, echo: bool = False) -> None:
        self.url = normalize_url(url, asynchronous=True)
        ensure_sqlite_dir(self.url)
        # hide_parameters: a database error's message would otherwise carry the statement's values
        # (recipients, message bodies) into logs, bullmq's failedReason and the dead letters.
        # The JSON codec makes every stored value readable and every read value encodable (see
        # `envoi.validation.json_safe`): one bad row must not break a page of the inbox or the DLQ.
        self.engine: AsyncEngine = create_async_engine(
            self.url,
            echo=echo,
            pool_pre_ping=True,
            hide_parameters=True,
            json_serializer=json_dumps,
            json_deserializer=json_loads,
            execution_options=schema_options(self.url, schema),
        )
        if self.url.get_backend_name() == "sqlite":
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            try:
                yield session
                await session.commit()
            except BaseException:
                await session.rollback()
                raise

    async def dispose(self) -> None:
        await self.engine.dispose()
