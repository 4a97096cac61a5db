"""(2) Redis killed with SIGKILL under load, with jobs waiting, running and delayed, then restarted from its
append-only file: nothing is lost, nothing is sent twice, and the worker reconnects by itself."""

from __future__ import annotations

import asyncio

from envoi.queue.names import NOTIFICATIONS_QUEUE
from tests.chaos.conftest import Stage
from tests.chaos.support import (
    connections,
    dead_letter_count,
    drained,
    enqueue_emails,
    received,
    recipients,
    report,
)
from tests.helpers import eventually

OUTAGE_S = 3


async def test_redis_killed_and_restarted_from_its_append_only_file_loses_nothing(stage: Stage) -> None:
    envoi = stage.envoi()
    stage.smtp.slow_down(0.5, stage="rcpt")
    now, later = recipients("now", 30), recipients("later", 10)
    await enqueue_emails(envoi, now)
    await enqueue_emails(envoi, later, delay=6)
    counts = await envoi.queue.counts(NOTIFICATIONS_QUEUE)
    assert counts is not None and counts["delayed"] == len(later), counts
    worker = stage.worker()
    await eventually(
        lambda: connections(worker.process.pid, stage.smtp.port) > 0, timeout=30, message="jobs running"
    )
    counts = await envoi.queue.counts(NOTIFICATIONS_QUEUE)
    assert counts is not None
    assert counts["active"] > 0 and counts["waiting"] > 0, counts

    assert stage.redis.process is not None
    stage.redis.process.kill()  # SIGKILL: no shutdown, no save but the append-only file
    stage.redis.process.wait()
    await eventually(
        lambda: "Redis connection lost" in worker.output(), timeout=30, message="the worker noticing"
    )
    # Down longer than a job's lock (2 s): the running jobs' locks are gone when Redis comes back.
    await asyncio.sleep(OUTAGE_S)  # the outage being simulated, not a synchronisation
    stage.redis.start()  # the same port and directory: the append-only file is loaded back

    await eventually(
        lambda: set(received(stage.smtp)) == set(now + later), timeout=90, message="every message sent"
    )
    await eventually(lambda: drained(envoi), timeout=60, message="every job done")
    counts_by_recipient = received(stage.smtp)
    report(
        "Redis SIGKILL and restart",
        messages=len(now + later),
        received=sum(counts_by_recipient.values()),
        cut_by_the_outage=len(stage.smtp.cut),
    )
    assert all(n == 1 for n in counts_by_recipient.values()), counts_by_recipient
    assert "Redis connection restored" in worker.output()
    assert await dead_letter_count(envoi) == 0
