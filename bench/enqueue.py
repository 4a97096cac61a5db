"""Enqueue cost: envoi against raw bullmq and a raw redis-py LPUSH, in the same run, same Redis.

    .venv/bin/python bench/enqueue.py [-n 5000] [--redis-url redis://127.0.0.1:6379/0]

Without --redis-url (or BENCH_REDIS_URL) a private redis-server is started. Prints per-call medians and
p95 in microseconds, and each figure as a ratio to raw `bullmq.Queue.add` measured in the same run.
Also: the first enqueue against a dead Redis (bounded by the connect timeout) and the calls after it
(circuit breaker open, job run inline), and the same through `SyncClient` from a plain thread.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from bullmq import Queue

from common import add_redis_argument, bench_environment
from envoi.config import Settings
from envoi.embedded_redis import free_port
from envoi.queue import NOTIFICATIONS_QUEUE, HandlerRegistry, JobContext
from envoi.runtime import Envoi
from envoi.sync_client import SyncClient

DATA = {"to": "jane@example.com", "subject": "Hello", "html": "<p>Hi</p>", "metadata": {"userId": "u1"}}


async def timed(n: int, call: Callable[[int], Awaitable[Any]]) -> list[float]:
    samples = []
    for i in range(n):
        started = time.perf_counter()
        await call(i)
        samples.append(time.perf_counter() - started)
    return samples


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e6, ordered[int(len(ordered) * 0.95)] * 1e6


def noop_registry() -> HandlerRegistry:
    registry = HandlerRegistry()

    @registry.handler("SEND_EMAIL")
    async def send(_data: object, context: JobContext) -> None:
        return None

    return registry


def settings_for(url: str, prefix: str, db: str, **extra: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None, redis_url=url, redis_prefix=prefix, database_url=db, **extra
    )


async def obliterate(url: str, prefix: str) -> None:
    """Leave nothing behind in a shared Redis (bullmq's keys, and envoi's recipient index)."""
    queue = Queue(NOTIFICATIONS_QUEUE, {"connection": url, "prefix": prefix})
    await queue.obliterate(force=True)
    await queue.close()
    client = aioredis.Redis.from_url(url)
    keys = [key async for key in client.scan_iter(match=f"envoi:{prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def main_async(n: int, url: str, db: str) -> dict[str, list[float]]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    results: dict[str, list[float]] = {}

    client = aioredis.Redis.from_url(url)
    results["redis-py LPUSH (floor)"] = await timed(n, lambda i: client.lpush(f"{prefix}:floor", str(i)))
    await client.delete(f"{prefix}:floor")

    queue = Queue(NOTIFICATIONS_QUEUE, {"connection": url, "prefix": f"{prefix}-raw"})
    opts = {"attempts": 5, "backoff": {"type": "exponential", "delay": 30000}, "removeOnComplete": True}
    results["bullmq Queue.add (baseline)"] = await timed(n, lambda i: queue.add("SEND_EMAIL", DATA, opts))
    await queue.close()
    await obliterate(url, f"{prefix}-raw")

    envoi = Envoi(settings_for(url, prefix, db), registry=noop_registry())
    results["envoi enqueue, Redis"] = await timed(
        n, lambda i: envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "SEND_EMAIL", DATA)
    )
    # A scheduled job: its recipient is indexed for the admin search (one more Redis command).
    results["envoi enqueue, Redis, delayed 1 h (recipient indexed)"] = await timed(
        n, lambda i: envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "SEND_EMAIL", DATA, delay=3600)
    )
    await envoi.close()
    await obliterate(url, prefix)

    unindexed = Envoi(settings_for(url, prefix, db, recipient_index_days=0), registry=noop_registry())
    results["envoi enqueue, Redis, delayed 1 h (no index)"] = await timed(
        n, lambda i: unindexed.queue.enqueue(NOTIFICATIONS_QUEUE, "SEND_EMAIL", DATA, delay=3600)
    )
    await unindexed.close()
    await obliterate(url, prefix)

    inline = Envoi(settings_for(url, prefix, db, queue_enabled=False), registry=noop_registry())
    results["envoi enqueue, QUEUE_ENABLED=false (inline no-op)"] = await timed(
        n, lambda i: inline.queue.enqueue(NOTIFICATIONS_QUEUE, "SEND_EMAIL", DATA)
    )
    await inline.close()

    dead_url = f"redis://127.0.0.1:{free_port()}/0"
    dead = Envoi(
        settings_for(dead_url, prefix, db, redis_breaker_cooldown_ms=3_600_000), registry=noop_registry()
    )
    results["envoi enqueue, Redis down: first call"] = await timed(
        1, lambda i: dead.queue.enqueue(NOTIFICATIONS_QUEUE, "SEND_EMAIL", DATA)
    )
    results["envoi enqueue, Redis down: breaker open (inline no-op)"] = await timed(
        n, lambda i: dead.queue.enqueue(NOTIFICATIONS_QUEUE, "SEND_EMAIL", DATA)
    )
    await dead.close()
    return results


def sync_client_samples(n: int, url: str, db: str) -> list[float]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    os.environ.update({"REDIS_URL": url, "REDIS_PREFIX": prefix, "DATABASE_URL": db})
    samples = []
    with SyncClient() as client:
        for _ in range(n):
            started = time.perf_counter()
            client.enqueue(NOTIFICATIONS_QUEUE, "SEND_EMAIL", DATA)
            samples.append(time.perf_counter() - started)
    asyncio.run(obliterate(url, prefix))
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000)
    add_redis_argument(parser)
    args = parser.parse_args()
    with bench_environment(args.redis_url) as (url, db):
        results = asyncio.run(main_async(args.n, url, db))
        results["envoi SyncClient.enqueue (from a thread)"] = sync_client_samples(args.n, url, db)
    baseline, _ = summary(results["bullmq Queue.add (baseline)"])
    print(f"n={args.n} per case, Redis {url}")
    print(f"{'case':58} {'median us':>10} {'p95 us':>10} {'x baseline':>10}")
    for name, samples in results.items():
        median, p95 = summary(samples)
        print(f"{name:58} {median:10.1f} {p95:10.1f} {median / baseline:10.2f}")


if __name__ == "__main__":
    main()
