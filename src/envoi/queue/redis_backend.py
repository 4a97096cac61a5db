"""The Redis backend: one bullmq `Queue` per name, created lazily and reused, over one redis-py client."""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis
from bullmq import Queue
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from envoi.config import Settings
from envoi.queue.base import EnqueueResult

#: What adding a job may take on a reachable Redis before the call counts as failed.
COMMAND_TIMEOUT_S = 2.0


def producer_client(settings: Settings) -> aioredis.Redis:
    """A client that fails fast: one connection attempt, bounded by REDIS_CONNECT_TIMEOUT_MS.

    bullmq's own client retries 20 times with backoff (about 350 s on a dead Redis); a producer sits on
    a request path and must not.
    """
    kwargs = settings.redis.connection_kwargs(connect_timeout_s=settings.redis_connect_timeout_s)
    kwargs["socket_timeout"] = max(COMMAND_TIMEOUT_S, settings.redis_connect_timeout_s)
    return aioredis.Redis(decode_responses=True, retry=Retry(NoBackoff(), 0), **kwargs)


class RedisBackend:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = producer_client(settings)
        self._queues: dict[str, Queue] = {}
        self._budget_s = settings.redis_connect_timeout_s + COMMAND_TIMEOUT_S

    def queue(self, name: str) -> Queue:
        if name not in self._queues:
            self._queues[name] = Queue(
                name, {"connection": self.client, "prefix": self.settings.redis_prefix}
            )
        return self._queues[name]

    async def enqueue(
        self, queue: str, job_name: str, data: dict[str, Any], *, job_id: str | None, options: dict[str, Any]
    ) -> EnqueueResult:
        opts = dict(options)
        if job_id is not None:
            opts["jobId"] = job_id
        # The client's own timeouts bound each step; this bounds the whole call (belt and braces).
        # asyncio.timeout, not wait_for: it does not spawn a task per call on the hot path.
        async with asyncio.timeout(self._budget_s):
            job = await self.queue(queue).add(job_name, data, opts)
        return EnqueueResult(job_id=str(job.id), job_name=job_name, queue=queue, mode="queued")

    async def remove(self, queue: str, job_id: str) -> bool:
        """True when the job existed and is gone. bullmq's removeJob answers 1 for an unknown id too,
        so existence is asked first; a job that is running (locked) is not removed."""
        q = self.queue(queue)
        async with asyncio.timeout(self._budget_s):
            if not await self.client.exists(q.toKey(job_id)):
                return False
            return bool(await q.remove(job_id))

    async def ping(self) -> bool:
        return bool(await asyncio.wait_for(self.client.ping(), self._budget_s))

    async def close(self) -> None:
        queues, self._queues = list(self._queues.values()), {}
        for q in queues:
            await q.close()
        await self.client.aclose()
