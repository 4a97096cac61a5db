"""`Database.connection()`: single statements in autocommit, on the same schema and with the same
masking of values as the sessions."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError

from envoi.config import Settings
from envoi.db.models import MessageDelivery
from envoi.db.session import Database

ROW = {"id": "01JCONNECTION0000000000000", "idempotency_key": "k1", "channel": "email", "provider": "smtp",
       "recipient": "jane@example.com", "status": "PENDING", "attempts": 0}  # fmt: skip


async def test_a_statement_is_committed_when_it_returns(settings: Settings) -> None:
    """No COMMIT is sent: the row is there for another connection as soon as the statement returned,
    whatever the block does next."""
    db = Database(settings.database_url, schema=settings.database_schema)
    try:
        with pytest.raises(RuntimeError):
            async with db.connection(bounded=True) as connection:
                await connection.execute(insert(MessageDelivery).values(ROW))
                raise RuntimeError("after the statement")
        async with db.session() as session:
            assert await session.scalar(select(MessageDelivery.recipient)) == "jane@example.com"
    finally:
        await db.dispose()


async def test_its_errors_hide_the_values(settings: Settings) -> None:
    db = Database(settings.database_url, schema=settings.database_schema)
    try:
        async with db.connection() as connection:
            await connection.execute(insert(MessageDelivery).values(ROW))
        with pytest.raises(IntegrityError) as caught:
            async with db.connection() as connection:
                await connection.execute(
                    insert(MessageDelivery).values({**ROW, "id": "01JCONNECTION0000000000001"})
                )
        assert "jane@example.com" not in str(caught.value)
    finally:
        await db.dispose()


async def test_a_connection_the_server_ended_is_replaced_before_use(settings: Settings) -> None:
    """The pool does not ping a connection that has nothing to read (a poll instead of a SELECT 1), but
    one whose backend the server ended (a restart, `pg_terminate_backend`) is replaced on checkout:
    the statement runs on a new connection, not into an error."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's connections only (SQLite's pool pings as before)")
    db = Database(settings.database_url, schema=settings.database_schema)
    try:
        pids = []
        for _ in range(2):
            async with db.connection(bounded=True) as connection:
                pids.append(await connection.scalar(text("SELECT pg_backend_pid()")))
        assert pids[0] == pids[1]  # kept in the pool and reused
        async with db.session() as session:
            assert await session.scalar(text("SELECT pg_terminate_backend(:pid)"), {"pid": pids[0]})
            while await session.scalar(
                text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid"), {"pid": pids[0]}
            ):
                await asyncio.sleep(0.01)  # the backend exits after the call returns
        async with db.connection(bounded=True) as connection:
            assert await connection.scalar(text("SELECT pg_backend_pid()")) != pids[0]
    finally:
        await db.dispose()


async def _backends_for(db: Database, concurrency: int, rounds: int) -> set[int]:
    """The PostgreSQL backends that served `rounds` statements from each of `concurrency` tasks, all
    holding a connection at once in each round (as many jobs sending at once)."""
    seen: set[int] = set()
    together = asyncio.Barrier(concurrency)

    async def task() -> None:
        for _ in range(rounds):
            async with db.connection(bounded=True) as connection:
                seen.add(await connection.scalar(text("SELECT pg_backend_pid()")))
                await together.wait()

    await asyncio.gather(*(task() for _ in range(concurrency)))
    return seen


@pytest.mark.parametrize("concurrency", [12])
async def test_jobs_running_at_once_keep_their_connections(settings: Settings, concurrency: int) -> None:
    """A worker's pool holds as many connections as it runs jobs at once (`Settings.database_pool`):
    12 tasks holding a connection at once, 5 times, are served by 12 backends. With SQLAlchemy's default
    of 5 the 7 beyond the pool are closed when handed back and opened again for the next statement."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's pool only (a SQLite connection is a file opened)")
    sized = settings.model_copy(update={"worker_concurrency": concurrency})
    assert sized.database_pool == concurrency
    assert settings.model_copy(update={"database_pool_size": 3}).database_pool == 3
    db = Database(settings.database_url, schema=settings.database_schema, pool_size=sized.database_pool)
    default = Database(settings.database_url, schema=settings.database_schema)
    try:
        assert len(await _backends_for(db, concurrency, rounds=5)) == concurrency
        assert len(await _backends_for(default, concurrency, rounds=5)) >= 2 * concurrency
    finally:
        await db.dispose()
        await default.dispose()
