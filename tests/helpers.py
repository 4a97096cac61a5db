"""Waiting on state, never on sleep: poll a condition until it holds or a deadline passes."""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


@overload
async def eventually(
    probe: Callable[[], Awaitable[T]], *, timeout: float = ..., interval: float = ..., message: str = ...
) -> T: ...


@overload
async def eventually(
    probe: Callable[[], T], *, timeout: float = ..., interval: float = ..., message: str = ...
) -> T: ...


async def eventually(
    probe: Callable[[], Any],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    message: str = "condition",
) -> Any:
    """Return the first truthy value of `probe()` (sync or async); fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        last = value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message} (last value: {last!r})")
        await asyncio.sleep(interval)  # a polling interval, not a synchronisation


def bull_queue(queue_service: Any, name: str) -> Any:
    """bullmq's `Queue` for `name`, for tests that look at the jobs in Redis (envoi's own code never
    reaches past `QueueService`)."""
    backend = queue_service._redis
    assert backend is not None, "the queue is disabled"
    return backend.queue(name)


def redis_client(queue_service: Any) -> Any:
    """The queue's own redis-py client, for tests that look at envoi's keys."""
    backend = queue_service._redis
    assert backend is not None, "the queue is disabled"
    return backend.client


async def job_state(envoi: Any, queue: str, job_id: str) -> str:
    """bullmq's state of a job ('waiting', 'delayed', 'active', 'completed', 'failed' or 'unknown')."""
    return str(await bull_queue(envoi.queue, queue).getJobState(job_id))


def process_env(settings: Any, **extra: str) -> dict[str, str]:
    """The environment of an envoi process on a test's Redis, key prefix and database (plus `extra`)."""
    return {
        **os.environ,
        "REDIS_URL": str(settings.redis_url),
        "REDIS_PREFIX": settings.redis_prefix,
        "DATABASE_URL": settings.database_url,
        "WORKER_DRAIN_DELAY_S": "1",
        **extra,
    }
