"""(4) The database is unreachable, or hung, at the moment jobs fail for the last time: the worker cannot
record their dead letters then; once the database is back, each is recorded exactly once (the worker's
own insert when it gets through, the reconciler's for what it missed, never both).

PostgreSQL only: the worker reaches it through a TCP proxy that refuses connections, or holds them
without an answer. (SQLite has no connection to take away.)"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest

from envoi.queue.names import NOTIFICATIONS_QUEUE, JobName
from envoi.runtime import Envoi
from tests.chaos.conftest import Stage
from tests.chaos.support import dead_letter_count, dead_letter_job_ids, report
from tests.dead_letters.support import reconciler
from tests.fixtures.proxy import TcpProxy
from tests.helpers import bull_queue, eventually

POSTGRES = os.environ.get("TEST_DATABASE_URL")
JOBS = 5


@pytest.mark.skipif(not POSTGRES, reason="TEST_DATABASE_URL not set")
@pytest.mark.parametrize("outage", ["unreachable", "hung"])
async def test_each_dead_letter_is_recorded_once_when_the_database_was_out_at_the_last_failure(
    stage: Stage, outage: str
) -> None:
    target = urlsplit(stage.database_url)
    envoi = stage.envoi()  # the test's view: straight to the database
    with TcpProxy(target.hostname or "127.0.0.1", target.port or 5432) as proxy:
        proxied = stage.database_url.replace(f"{target.hostname}:{target.port}", f"127.0.0.1:{proxy.port}", 1)
        worker = stage.worker(
            database_url=proxied, database_connect_timeout_s=2, database_statement_timeout_s=1
        )
        ids = [await _fail_for_good(envoi, "warm-up")]
        # Recorded while the database answers: the worker holds a pooled connection through the proxy.
        await eventually(lambda: _count_is(envoi, 1), timeout=30, message="the first dead letter")
        if outage == "unreachable":
            proxy.refuse()
        else:
            proxy.freeze()
        ids += [await _fail_for_good(envoi, str(i)) for i in range(JOBS)]

        async def all_failed() -> bool:
            counts = await envoi.queue.counts(NOTIFICATIONS_QUEUE)
            return counts is not None and counts["failed"] == JOBS + 1

        await eventually(all_failed, timeout=30, message="every job failed for good")
        assert await dead_letter_count(envoi) == 1  # nothing more could be written
        if outage == "unreachable":
            proxy.accept()
        else:
            proxy.thaw()
        await eventually(lambda: _count_is(envoi, JOBS + 1), timeout=60, message="the dead letters recorded")
        # Another full pass finds nothing missing, and nothing was doubled.
        # (Counted in the table: the pass's own count reads psycopg's row count, -1 for this insert.)
        await reconciler(envoi).reconcile_once(full=True)
        assert await dead_letter_count(envoi) == JOBS + 1
        recorded = await dead_letter_job_ids(envoi)
    report(f"database {outage} at the last failure", jobs=JOBS + 1, dead_letters=len(recorded))
    assert sorted(recorded, key=str) == sorted(ids, key=str)
    assert worker.process.poll() is None  # the worker lived through it


async def _fail_for_good(envoi: Envoi, tag: str) -> str:
    """A job with invalid data, added as a foreign producer would (envoi's own `enqueue` refuses it at the
    call): a permanent failure at its first attempt, its last."""
    data = {"to": f"not-an-address-{tag}", "subject": "x", "html": "x"}
    job = await bull_queue(envoi.queue, NOTIFICATIONS_QUEUE).add(
        JobName.SEND_EMAIL.value, data, {"attempts": 5}
    )
    return str(job.id)


async def _count_is(envoi: Envoi, expected: int) -> bool:
    return await dead_letter_count(envoi) == expected
