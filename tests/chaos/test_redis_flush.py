"""(9) Redis loses its data between two jobs: bullmq's counter starts again at 1, and the new job 1 is
not taken for the old one (the ledger keys a counter id with the job's creation time)."""

from __future__ import annotations

import redis.asyncio as aioredis

from tests.chaos.conftest import Stage
from tests.chaos.support import drained, enqueue_emails, received
from tests.helpers import eventually


async def test_redis_flushed_between_two_jobs_with_the_same_id_sends_both(stage: Stage) -> None:
    envoi = stage.envoi()
    stage.worker()
    [first] = await enqueue_emails(envoi, ["jeanne@example.com"])
    await eventually(lambda: stage.smtp.messages, timeout=30, message="the first message")
    await eventually(lambda: drained(envoi), timeout=10, message="the first job completed")

    client = aioredis.Redis.from_url(stage.redis.url)
    try:
        await client.flushall()  # a restart without persistence, a failover to an empty replica
        # The same recipient (it was "already SENT"), then another (it was a key conflict).
        [second] = await enqueue_emails(envoi, ["jeanne@example.com"])
        await eventually(lambda: len(stage.smtp.messages) == 2, timeout=30, message="the second message")
        await client.flushall()
        [third] = await enqueue_emails(envoi, ["paul@example.com"])
        await eventually(lambda: len(stage.smtp.messages) == 3, timeout=30, message="the third message")
    finally:
        await client.aclose()
    assert first == second == third == "1"
    assert received(stage.smtp) == {"jeanne@example.com": 2, "paul@example.com": 1}
