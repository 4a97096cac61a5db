"""A database that hangs fails the caller within its timeouts (connect, statement, busy, a bounded
session) instead of holding it: a hung PostgreSQL is a TCP port that accepts and never answers."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from envoi.db.migrate import upgrade
from envoi.db.models import MessageDelivery
from envoi.db.session import Database, connect_args
from envoi.queue.names import NOTIFICATIONS_QUEUE, JobName
from envoi.runtime import Envoi
from tests.channels.support import Recorder, email_data
from tests.fixtures.proxy import TcpProxy
from tests.fixtures.smtp import SmtpSink
from tests.helpers import eventually

POSTGRES = os.environ.get("TEST_DATABASE_URL")
needs_postgres = pytest.mark.skipif(not POSTGRES, reason="TEST_DATABASE_URL not set")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """These tests bring their own databases (a hung one, TEST_DATABASE_URL's): the shared one is SQLite
    only, not once per database."""
    url = f"sqlite:///{tmp_path / 'envoi.db'}"
    upgrade(url)
    return url


def test_postgresql_timeouts_join_the_urls_own_options() -> None:
    url = make_url("postgresql+psycopg://u@h/db?options=-csearch_path%3Dt_1")
    args = connect_args(url, connect_timeout_s=0.5, statement_timeout_s=2.5)
    # libpq counts whole seconds, at least 2.
    assert args == {"connect_timeout": 2, "options": "-csearch_path=t_1 -c statement_timeout=2500"}
    plain = connect_args(
        make_url("postgresql+psycopg://u@h/db"), connect_timeout_s=7.2, statement_timeout_s=None
    )
    assert plain == {"connect_timeout": 8}
    assert connect_args(make_url("sqlite+aiosqlite:///x.db"), connect_timeout_s=5, statement_timeout_s=3) == {
        "timeout": 3
    }


async def test_a_hung_postgresql_fails_the_connect_within_the_timeout() -> None:
    with TcpProxy("127.0.0.1", 9) as hung:
        hung.freeze()
        db = Database(
            f"postgresql://envoi@127.0.0.1:{hung.port}/envoi", connect_timeout_s=2, statement_timeout_s=1
        )
        started = time.monotonic()
        try:
            with pytest.raises(OperationalError, match="timeout"):
                async with db.session() as session:
                    await session.execute(text("SELECT 1"))
        finally:
            await db.dispose()
        # psycopg's own default is 130 s.
        assert time.monotonic() - started < 6
        assert hung.accepted >= 1


async def test_a_hung_database_fails_the_job_transiently_instead_of_holding_it(
    make_delivery_settings: Any, make_envoi: Any, start_worker: Any, smtp_sink: SmtpSink
) -> None:
    with TcpProxy("127.0.0.1", 9) as hung:
        hung.freeze()
        settings = make_delivery_settings(
            database_url=f"postgresql://envoi@127.0.0.1:{hung.port}/envoi",
            database_connect_timeout_s=2,
            database_statement_timeout_s=1,
            job_attempts=2,
        )
        envoi: Envoi = make_envoi(settings)
        recorder = Recorder()
        envoi.recorders.append(recorder)
        worker = await start_worker(envoi)
        worker.companions.clear()
        started = time.monotonic()
        await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_EMAIL, email_data())
        [failure] = await eventually(lambda: recorder.failures, timeout=30, message="the final failure")
        # Two attempts, each cut by the connect timeout: transient, retried, then a dead letter.
        assert failure.attempts_made == 2
        assert "timeout" in failure.error_message.lower()
        assert time.monotonic() - started < 20
        assert smtp_sink.messages == []


async def test_sqlite_waits_for_a_lock_as_long_as_the_statement_timeout(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    upgrade(f"sqlite:///{path}")
    db = Database(f"sqlite:///{path}", statement_timeout_s=0.5)
    async with db.session() as session:
        await session.execute(text("SELECT 1"))  # connected: the file is in WAL mode
    holder = sqlite3.connect(path)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    started = time.monotonic()
    try:
        with pytest.raises(OperationalError, match="locked"):
            async with db.session() as session:
                session.add(
                    MessageDelivery(idempotency_key="k", channel="email", provider="smtp", recipient="a@b.c")
                )
        elapsed = time.monotonic() - started
        assert 0.4 <= elapsed < 3, elapsed
    finally:
        holder.rollback()
        holder.close()
        await db.dispose()


@needs_postgres
async def test_postgresql_cancels_a_statement_past_the_timeout() -> None:
    assert POSTGRES is not None
    url = POSTGRES + ("&" if "?" in POSTGRES else "?") + "options=-csearch_path%3Dpublic"
    db = Database(url, statement_timeout_s=0.5)
    try:
        async with db.session() as session:
            assert (await session.execute(text("SHOW statement_timeout"))).scalar_one() == "500ms"
            assert (await session.execute(text("SHOW search_path"))).scalar_one() == "public"
        started = time.monotonic()
        with pytest.raises(OperationalError, match="statement timeout"):
            async with db.session() as session:
                await session.execute(text("SELECT pg_sleep(5)"))
        assert time.monotonic() - started < 3
    finally:
        await db.dispose()


@needs_postgres
async def test_a_bounded_session_gives_up_on_a_server_that_stops_answering() -> None:
    assert POSTGRES is not None
    target = urlsplit(POSTGRES)
    with TcpProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        url = POSTGRES.replace(f"{target.hostname}:{target.port}", f"127.0.0.1:{proxy.port}", 1)
        db = Database(url, connect_timeout_s=2, statement_timeout_s=1)
        try:
            async with db.session(bounded=True) as session:
                await session.execute(text("SELECT 1"))  # a connection in the pool, open
            proxy.freeze()
            started = time.monotonic()
            with pytest.raises(TimeoutError):
                async with db.session(bounded=True) as session:
                    await session.execute(text("SELECT 1"))
            # The bound (2 + 1 + 1 s), then psycopg's own attempt to cancel the query (at most 10 s).
            assert time.monotonic() - started < db.unit_timeout_s + 12
            proxy.thaw()
            async with db.session(bounded=True) as session:
                assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
        finally:
            await db.dispose()
