"""The Redis backend: one bullmq `Queue` per name, created lazily and reused, over one redis-py client.

This module and the others of `envoi.queue` are the only code that talks to Redis. Every call goes
through `QueueService.on_redis` (`RedisDoor`), which decides between Redis and the fallback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol, TypeVar

import redis.asyncio as aioredis
from bullmq import Queue
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from envoi.config import Settings
from envoi.queue.base import BulkJob, EnqueueResult
from envoi.queue.coalesce import Coalescer
from envoi.queue.connection import new_client, pack_with_hiredis
from envoi.queue.deadline import Deadlines
from envoi.queue.keys import EnvoiKeys

#: What adding a job may take on a reachable Redis before the call counts as failed.
COMMAND_TIMEOUT_S = 2.0

T = TypeVar("T")


def producer_client(settings: Settings, *, bounded_reads: bool = True) -> aioredis.Redis:
    """A client that fails fast: one connection attempt, bounded by REDIS_CONNECT_TIMEOUT_MS.

    bullmq's own client retries 20 times with backoff (about 350 s on a dead Redis); a producer sits on
    a request path and must not. `bounded_reads=False` leaves out redis-py's socket timeout, for a
    client whose every call is bounded otherwise (`Deadlines`): with a socket timeout, redis-py
    wraps each write in `asyncio.wait_for`, a task per command (bench/enqueue.py, docs/benchmarks.md).
    """
    kwargs = settings.redis.connection_kwargs(connect_timeout_s=settings.redis_connect_timeout_s)
    if bounded_reads:
        kwargs["socket_timeout"] = max(COMMAND_TIMEOUT_S, settings.redis_connect_timeout_s)
    client = new_client(settings.redis, decode_responses=True, retry=Retry(NoBackoff(), 0), **kwargs)
    pack_with_hiredis(client)
    return client


def text(value: bytes | str | None) -> str | None:
    """A reply as text (the producer client decodes replies; typing cannot tell)."""
    return value.decode() if isinstance(value, bytes) else value


class RedisBackend:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client = producer_client(settings)
        #: Adds jobs, and nothing else: each add is bounded by `budget_s` (`deadlines`).
        self.add_client = producer_client(settings, bounded_reads=False)
        self._adders: dict[str, Queue] = {}
        self.keys = EnvoiKeys.for_prefix(settings.redis_prefix)
        self._queues: dict[str, Queue] = {}
        #: Bounds a whole call, beyond the client's own per-step timeouts.
        self.budget_s = settings.redis_connect_timeout_s + COMMAND_TIMEOUT_S
        #: Bounds each add (`add_client` has no socket timeout): one timer per tick, not one per add.
        self.deadlines = Deadlines(self.budget_s)
        self.coalescer = Coalescer(self.add_one, self.add_bulk)

    def queue(self, name: str) -> Queue:
        if name not in self._queues:
            self._queues[name] = Queue(
                name, {"connection": self.client, "prefix": self.settings.redis_prefix}
            )
        return self._queues[name]

    def adder(self, name: str) -> Queue:
        """The bullmq `Queue` that adds jobs to `name`, over `add_client`."""
        if name not in self._adders:
            self._adders[name] = Queue(
                name, {"connection": self.add_client, "prefix": self.settings.redis_prefix}
            )
        return self._adders[name]

    async def enqueue(self, job: BulkJob) -> EnqueueResult:
        """Add one job; with the others added in this loop iteration, in one bulk add (`Coalescer`)."""
        job_id = await self.coalescer.add(job)
        return EnqueueResult(job_id=job_id, job_name=job.name, queue=job.queue, mode="queued")

    async def enqueue_many(self, jobs: Sequence[BulkJob]) -> list[EnqueueResult]:
        """Add jobs of one queue in one MULTI/EXEC (all or none), in order."""
        ids = await self.add_bulk(jobs)
        return [
            EnqueueResult(job_id=job_id, job_name=job.name, queue=job.queue, mode="queued")
            for job, job_id in zip(jobs, ids, strict=True)
        ]

    async def add_one(self, job: BulkJob) -> str:
        added = await self.deadlines.bound(self.adder(job.queue).add(job.name, job.data, job.bullmq_opts()))
        return str(added.id)

    async def add_bulk(self, jobs: Sequence[BulkJob]) -> list[str]:
        """bullmq's `addBulk`: a SCRIPT EXISTS, then one MULTI/EXEC holding every job's add script."""
        queues = {job.queue for job in jobs}
        if len(queues) != 1:
            raise ValueError(f"a bulk add goes to one queue, not {sorted(queues)}")
        entries = [{"name": job.name, "data": job.data, "opts": job.bullmq_opts()} for job in jobs]
        added = await self.deadlines.bound(self.adder(queues.pop()).addBulk(entries))
        return [str(job.id) for job in added]

    async def remove(self, queue: str, job_id: str) -> bool:
        """True when the job existed and is gone. bullmq's removeJob answers 1 for an unknown id too,
        so existence is asked first; a job that is running (locked) is not removed."""
        q = self.queue(queue)
        async with asyncio.timeout(self.budget_s):
            if not await self.client.exists(q.toKey(job_id)):
                return False
            return bool(await q.remove(job_id))

    async def counts(self, queue: str) -> dict[str, int]:
        async with asyncio.timeout(self.budget_s):
            counts: dict[str, int] = await self.queue(queue).getJobCounts()
        return counts

    async def ping(self) -> bool:
        async with asyncio.timeout(self.budget_s):
            return bool(await self.client.ping())

    async def close(self) -> None:
        await self.coalescer.close()
        queues = [*self._queues.values(), *self._adders.values()]
        self._queues, self._adders = {}, {}
        for q in queues:
            await q.close()
        await self.client.aclose()
        await self.add_client.aclose()


class RedisDoor(Protocol):
    """`QueueService.on_redis`: run `op` on Redis, or raise `QueueUnavailableError`."""

    async def __call__(self, op: Callable[[RedisBackend], Awaitable[T]]) -> T: ...
