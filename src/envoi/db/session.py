"""Engines and sessions. `DATABASE_URL` names a database; the drivers are chosen here.

SQLite runs through aiosqlite (async) and the stdlib driver (migrations); PostgreSQL through psycopg 3,
which serves both.

`DATABASE_SCHEMA` puts envoi's tables in a PostgreSQL schema of their own (beside another application's
tables of the same names, such as the original NestJS system's `failed_jobs`). The models stay
schema-free: every engine translates their schema (None) to the configured one (`schema_options`), so
the same models serve SQLite, where the setting is ignored, and any schema. Unset, unqualified names
follow the connection's search_path (`public` on a fresh database).

Every engine has timeouts (`connect_args`), so that a database that hangs fails the caller instead of
holding it: on PostgreSQL a connect timeout (libpq's `connect_timeout`, whole seconds, at least 2) and a
statement timeout (`-c statement_timeout`, enforced by the server); on SQLite the busy timeout (how long
a write waits for another's lock). A bounded session (`Database.session(bounded=True)`) adds a
client-side bound on the whole unit of work, for a server that stopped answering on a connection
already open, which neither of the others catches.

Single statements on a job's path (the delivery ledger, the webhook publisher's endpoint lookup) run on
a second engine in autocommit (`Database.connection()`): a statement is its own transaction, so the
unit costs one round trip (and the pool's ping) instead of BEGIN, the statement and COMMIT. That engine
has a pool of its own; it opens connections only when used (in `envoi worker`, mostly this one).
"""

from __future__ import annotations

import asyncio
import math
import select
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, Dialect, make_url
from sqlalchemy.exc import InvalidatePoolError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from envoi.config import DEFAULT_DATABASE_POOL
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


#: The defaults of DATABASE_CONNECT_TIMEOUT_S and DATABASE_STATEMENT_TIMEOUT_S.
DEFAULT_CONNECT_TIMEOUT_S = 5.0
DEFAULT_STATEMENT_TIMEOUT_S = 30.0
#: A bounded unit of work may take one connection and one statement, plus this.
UNIT_SLACK_S = 1.0


def connect_args(url: URL, *, connect_timeout_s: float, statement_timeout_s: float | None) -> dict[str, Any]:
    """The driver's timeout arguments for `url` (`statement_timeout_s=None`: no statement timeout, for
    migrations, which may rightly run long)."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        # The stdlib driver's `timeout` is SQLite's busy timeout.
        return {"timeout": statement_timeout_s or connect_timeout_s}
    args: dict[str, Any] = {"connect_timeout": max(2, math.ceil(connect_timeout_s))}
    if statement_timeout_s is not None:
        # Added to the URL's own `options` (a search_path, say), which connect_args would replace.
        given = url.query.get("options")
        own = f"-c statement_timeout={round(statement_timeout_s * 1000)}"
        args["options"] = f"{given} {own}" if isinstance(given, str) and given else own
    return args


def _sqlite_pragmas(busy_timeout_ms: int) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets the API read while the worker writes; busy_timeout waits on a lock instead of failing.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms:d}")
        cursor.close()

    return on_connect


def _pending(fd: int) -> bool:
    """Whether the socket has bytes (or the end of the stream) waiting, without waiting."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


def _ping_if_the_server_spoke(dialect: Dialect) -> Callable[[Any, Any, Any], None]:
    """`pool_pre_ping` at the price of a poll(2) instead of a round trip, for psycopg connections.

    An idle connection has nothing to read: the server answers only what was asked. A server that
    ends the connection (a restart, `pg_terminate_backend`, an idle timeout, the backend killed) sends
    its FATAL message and closes the socket, which makes it readable; only then is the SELECT 1 sent,
    and a failed one replaces the connection, and every pooled one opened before it, as a failed pre-ping
    does. A connection that went silent (a network cut) is caught by neither check: its first statement
    hangs until the bounded unit's timeout, as the ping would have."""

    def checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        driver = dbapi_connection.driver_connection
        try:
            if driver.closed:
                raise ConnectionError("the connection is closed")
            if not _pending(driver.pgconn.socket):
                return
            dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise InvalidatePoolError(f"the server ended the connection ({type(exc).__name__})") from exc

    return checkout


class Database:
    """One async engine and its session factory; `session()` is a unit of work that commits on exit."""

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        echo: bool = False,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
        statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S,
        pool_size: int = DEFAULT_DATABASE_POOL,
    ) -> None:
        self.url = normalize_url(url, asynchronous=True)
        postgres = self.url.get_backend_name() == "postgresql"
        ensure_sqlite_dir(self.url)
        #: What a bounded session may take in all.
        self.unit_timeout_s = connect_timeout_s + statement_timeout_s + UNIT_SLACK_S
        # hide_parameters: a database error's message would otherwise carry the statement's values
        # (recipients, message bodies) into logs, bullmq's failedReason and the dead letters.
        # The JSON codec makes every stored value readable and every read value encodable (see
        # `envoi.validation.json_safe`): one bad row must not break a page of the inbox or the DLQ.
        options: dict[str, Any] = {
            "echo": echo,
            "pool_pre_ping": True,
            "hide_parameters": True,
            "json_serializer": json_dumps,
            "json_deserializer": json_loads,
            "execution_options": schema_options(self.url, schema),
            "connect_args": connect_args(
                self.url, connect_timeout_s=connect_timeout_s, statement_timeout_s=statement_timeout_s
            ),
        }
        if postgres:
            # A connection beyond the pool is closed when handed back: a worker running more jobs at
            # once than the pool holds opened a PostgreSQL backend for each statement of the extra ones.
            options["pool_size"] = pool_size
        self.engine: AsyncEngine = create_async_engine(self.url, **options)
        #: For `connection()`: every statement commits on its own (no BEGIN, no COMMIT round trip).
        #: On PostgreSQL its pool pings only a connection whose socket has something to say.
        #: No ROLLBACK on release either (`skip_autocommit_rollback`): there is no transaction to end.
        self.autocommit_engine: AsyncEngine = create_async_engine(
            self.url,
            isolation_level="AUTOCOMMIT",
            skip_autocommit_rollback=True,
            **{**options, "pool_pre_ping": not postgres},
        )
        if postgres:
            ping = _ping_if_the_server_spoke(self.autocommit_engine.dialect)
            event.listen(self.autocommit_engine.sync_engine, "checkout", ping)
        else:
            pragmas = _sqlite_pragmas(round(statement_timeout_s * 1000))
            event.listen(self.engine.sync_engine, "connect", pragmas)
            event.listen(self.autocommit_engine.sync_engine, "connect", pragmas)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    @asynccontextmanager
    async def session(self, *, bounded: bool = False) -> AsyncIterator[AsyncSession]:
        """`bounded=True`: the whole unit (connection, statements, commit) is cut after
        `unit_timeout_s` with a `TimeoutError`; for short units on a job's path (the delivery ledger)."""
        async with self.sessionmaker() as session:
            try:
                async with asyncio.timeout(self.unit_timeout_s if bounded else None):
                    yield session
                    await session.commit()
            except TimeoutError:
                # The connection is in an unknown state (a statement may be running): drop it rather
                # than ask a server that does not answer to roll back.
                await session.invalidate()
                raise
            except BaseException:
                await session.rollback()
                raise

    @asynccontextmanager
    async def connection(self, *, bounded: bool = False) -> AsyncIterator[AsyncConnection]:
        """A Core connection in autocommit for single statements on a hot path (no ORM session): each
        statement is committed when it returns, on its own. Never for two statements that must hold
        together (use `session()`). `bounded` as for `session()`."""
        async with self.autocommit_engine.connect() as connection:
            try:
                async with asyncio.timeout(self.unit_timeout_s if bounded else None):
                    yield connection
            except TimeoutError:
                await connection.invalidate()
                raise

    async def dispose(self) -> None:
        await self.engine.dispose()
        await self.autocommit_engine.dispose()
