"""Concurrent single enqueues coalesced: the jobs added from several tasks within one event-loop
iteration reach Redis as one bulk add (one MULTI/EXEC), instead of one round trip each.

An add made while nothing is on its way to Redis goes at once, alone (one EVALSHA): a caller on its own
waits for nothing. An add made while another is in flight opens a batch, whose flush `call_soon`
schedules after every task that was ready in this iteration had its turn; the adds of those tasks join
the batch and go out together (a SCRIPT EXISTS, then one MULTI/EXEC). A batch that got a single job
hands it back to its caller, who adds it alone. 50 concurrent callers: three round trips instead of
fifty, and under a steady load one bulk add per wave of callers.

Each caller keeps its own outcome:
- the batch's id list is in the order of the adds: each caller gets the id at its place;
- Redis unreachable or refusing the transaction: every caller gets that error raised in its own task,
  where `QueueService.on_redis` turns it into that caller's own inline run;
- anything else raised while the batch was built (nothing was sent: a value bullmq cannot encode in one
  job's options, say): each caller adds its own job alone, so that only the job at fault fails.

A caller that is cancelled while it waits does not take its job out: the job was, or is being, added,
as a lone add cancelled mid-flight may have been.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from redis.exceptions import DataError, RedisError

from envoi.queue.base import CHUNK_SIZE, BulkJob

log = logging.getLogger("envoi.queue")

#: What a caller gets back instead of an id: add your job alone.
ALONE = None


@dataclass(slots=True)
class _Batch:
    queue: str
    jobs: list[BulkJob] = field(default_factory=list)
    waiters: list[asyncio.Future[str | None]] = field(default_factory=list)


def _reached_redis(exc: BaseException) -> bool:
    """Did the batch fail at or on the way to Redis (every job's outcome), or while it was being built
    (nothing sent)? redis-py's DataError is raised while a command is encoded, before anything is sent."""
    return isinstance(exc, RedisError | OSError | TimeoutError) and not isinstance(exc, DataError)


class Coalescer:
    def __init__(
        self,
        add_one: Callable[[BulkJob], Awaitable[str]],
        add_many: Callable[[Sequence[BulkJob]], Awaitable[list[str]]],
        *,
        max_batch: int = CHUNK_SIZE,
    ) -> None:
        self._add_one = add_one
        self._add_many = add_many
        self.max_batch = max_batch
        #: The open batch of each queue (bullmq adds in bulk to one queue at a time).
        self._open: dict[str, _Batch] = {}
        #: Flushes in flight, kept referenced until done (the loop holds only weak references to tasks).
        self._flushing: set[asyncio.Task[None]] = set()
        #: Adds on their way to Redis (alone or in bulk).
        self._in_flight = 0

    async def add(self, job: BulkJob) -> str:
        """Add `job`, alone or with the others of this loop iteration; its id. Raises what adding it
        raised."""
        batch = self._open.get(job.queue)
        if batch is None:
            if not self._in_flight:
                # Nothing on its way to Redis: go at once, alone. A lone caller waits for nothing and
                # schedules nothing; the adds that follow in this iteration open a batch.
                return await self._alone(job)
            batch = self._open[job.queue] = _Batch(job.queue)
            asyncio.get_running_loop().call_soon(self._flush, batch)
        waiter: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        batch.jobs.append(job)
        batch.waiters.append(waiter)
        if len(batch.jobs) >= self.max_batch:
            # Full: the next add opens another batch, flushed in the same turn.
            del self._open[job.queue]
        job_id = await waiter
        return await self._alone(job) if job_id is ALONE else job_id

    async def _alone(self, job: BulkJob) -> str:
        self._in_flight += 1
        try:
            return await self._add_one(job)
        finally:
            self._in_flight -= 1

    def _flush(self, batch: _Batch) -> None:
        if self._open.get(batch.queue) is batch:
            del self._open[batch.queue]
        if len(batch.jobs) <= 1:
            for waiter in batch.waiters:
                _settle(waiter, ALONE)
            return
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._flushing.add(task)
        task.add_done_callback(self._flushing.discard)

    async def _send(self, batch: _Batch) -> None:
        ids: Sequence[str | None]
        self._in_flight += 1
        try:
            ids = await self._add_many(batch.jobs)
        except asyncio.CancelledError:
            for waiter in batch.waiters:
                waiter.cancel()
            raise
        except Exception as exc:
            if _reached_redis(exc):
                for waiter in batch.waiters:
                    if not waiter.done():
                        waiter.set_exception(exc)
                return
            log.info("A bulk add failed before it was sent (%s): each job goes alone", type(exc).__name__)
            ids = [ALONE] * len(batch.jobs)
        finally:
            self._in_flight -= 1
        for waiter, job_id in zip(batch.waiters, ids, strict=True):
            _settle(waiter, job_id)

    async def close(self) -> None:
        """Wait for the flushes in flight (their callers are waiting on them)."""
        if self._flushing:
            await asyncio.gather(*self._flushing, return_exceptions=True)


def _settle(waiter: asyncio.Future[str | None], job_id: str | None) -> None:
    if not waiter.done():
        waiter.set_result(job_id)
