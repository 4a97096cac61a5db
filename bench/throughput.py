"""Worker throughput: envoi's worker against a raw bullmq worker, same Redis, same run.

    .venv/bin/python bench/throughput.py [-n 5000] [--concurrency 50] [--reps 3] [--redis-url URL]

Each repetition adds N no-op jobs in bulk, then times one worker from its first to its last completion.
Three workers: bullmq given a URL (redis-py's default 5 s socket timeout: the baseline), bullmq given
envoi's connection settings (no socket timeout), and envoi's worker, which adds the registry lookup,
the error tree, metrics and the dead-letter listener. Prints jobs/s (median of the repetitions).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from typing import Any
from urllib.parse import urlsplit

from bullmq import Queue
from bullmq import Worker as BullWorker

from common import add_redis_argument, bench_environment
from envoi.config import Settings
from envoi.queue import NOTIFICATIONS_QUEUE, HandlerRegistry, JobContext
from envoi.runtime import Envoi
from envoi.worker import Worker

OPTS = {"attempts": 5, "backoff": {"type": "exponential", "delay": 30000}, "removeOnComplete": True}


async def fill(url: str, prefix: str, n: int) -> None:
    queue = Queue(NOTIFICATIONS_QUEUE, {"connection": url, "prefix": prefix})
    for start in range(0, n, 1000):
        await queue.addBulk(
            [{"name": "NOOP", "data": {"i": i}, "opts": OPTS} for i in range(start, min(n, start + 1000))]
        )
    await queue.close()


async def drain_raw(url: str, prefix: str, n: int, concurrency: int, *, tuned: bool = False) -> float:
    """A bare bullmq worker; `tuned` gives it envoi's connection (no socket timeout) instead of a URL."""
    await fill(url, prefix, n)
    done = asyncio.Event()
    stamps: list[float] = []

    async def process(job: Any, token: str) -> None:
        stamps.append(time.perf_counter())
        if len(stamps) == n:
            done.set()

    connection: Any = url
    if tuned:
        parts = urlsplit(url)
        connection = {"host": parts.hostname, "port": parts.port, "socket_timeout": None}
    options = {"connection": connection, "prefix": prefix, "concurrency": concurrency}
    worker = BullWorker(NOTIFICATIONS_QUEUE, process, options)
    await done.wait()
    await worker.close()
    return (n - 1) / (stamps[-1] - stamps[0])


async def drain_envoi(url: str, prefix: str, n: int, concurrency: int, db: str) -> float:
    await fill(url, prefix, n)
    done = asyncio.Event()
    stamps: list[float] = []
    registry = HandlerRegistry()

    @registry.handler("NOOP")
    async def noop(_data: object, context: JobContext) -> None:
        stamps.append(time.perf_counter())
        if len(stamps) == n:
            done.set()

    settings = Settings(_env_file=None, redis_url=url, redis_prefix=prefix, database_url=db)  # type: ignore[call-arg]
    envoi = Envoi(settings, registry=registry)
    worker = Worker(envoi, concurrency=concurrency)
    await worker.start()
    await done.wait()
    await worker.close()
    await envoi.close()
    return (n - 1) / (stamps[-1] - stamps[0])


BASELINE = "bullmq Worker, URL connection (baseline)"
TUNED = "bullmq Worker, socket_timeout=None"
ENVOI = "envoi Worker"


async def main_async(url: str, n: int, concurrency: int, reps: int, db: str) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {BASELINE: [], TUNED: [], ENVOI: []}
    for rep in range(reps):
        # Rotate the order so that no side always runs on a warmer Redis.
        order = [BASELINE, TUNED, ENVOI]
        order = order[rep % 3 :] + order[: rep % 3]
        for kind in order:
            prefix = f"bench-{uuid.uuid4().hex[:8]}"
            if kind == ENVOI:
                rates[kind].append(await drain_envoi(url, prefix, n, concurrency, db))
            else:
                rates[kind].append(await drain_raw(url, prefix, n, concurrency, tuned=kind == TUNED))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--reps", type=int, default=3)
    add_redis_argument(parser)
    args = parser.parse_args()
    with bench_environment(args.redis_url) as (url, db):
        rates = asyncio.run(main_async(url, args.n, args.concurrency, args.reps, db))
    baseline = statistics.median(rates[BASELINE])
    print(f"n={args.n} no-op jobs, concurrency {args.concurrency}, {args.reps} repetitions, Redis {url}")
    print(f"{'worker':42} {'jobs/s (median)':>16} {'runs':>36} {'x baseline':>10}")
    for name, values in rates.items():
        runs = ", ".join(f"{v:.0f}" for v in values)
        print(
            f"{name:28} {statistics.median(values):16.0f} {runs:>28} {statistics.median(values) / baseline:10.2f}"
        )


if __name__ == "__main__":
    main()
