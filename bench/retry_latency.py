"""How late a retry starts after its backoff: envoi's worker against a bare bullmq worker, same run.

    .venv/bin/python bench/retry_latency.py [-n 10] [--backoff-ms 500] [--redis-url URL]

A job fails once and is retried after a fixed backoff; the figure is (second start - first start -
backoff), median over n jobs, for each worker. bullmq's Python worker rounds its blocking waits up to
whole seconds unless it has read the server's version, which envoi's worker does at start.
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


class Starts:
    """When each attempt of the current job started; `retried` is set by the second."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.retried = asyncio.Event()

    def record(self) -> bool:
        """Record a start; True for the first attempt (which must fail)."""
        self.times.append(time.monotonic())
        if len(self.times) == 2:
            self.retried.set()
        return len(self.times) == 1


async def measure(add: Any, starts: Starts, n: int, backoff_s: float) -> list[float]:
    lateness = []
    for _ in range(n):
        starts.times.clear()
        starts.retried.clear()
        await add()
        await asyncio.wait_for(starts.retried.wait(), 30)
        lateness.append((starts.times[1] - starts.times[0] - backoff_s) * 1000)
    return lateness


async def bare(url: str, n: int, backoff_ms: int) -> list[float]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    starts = Starts()

    async def process(job: Any, token: str) -> None:
        if starts.record():
            raise RuntimeError("first attempt fails")

    parts = urlsplit(url)
    # Same connection settings as envoi's worker (no socket timeout), so only the version call differs.
    connection = {"host": parts.hostname, "port": parts.port}
    worker = BullWorker(
        NOTIFICATIONS_QUEUE,
        process,
        {"connection": {**connection, "socket_timeout": None}, "prefix": prefix, "drainDelay": 4},
    )
    queue = Queue(NOTIFICATIONS_QUEUE, {"connection": url, "prefix": prefix})
    opts = {"attempts": 2, "backoff": {"type": "fixed", "delay": backoff_ms}, "removeOnComplete": True}
    result = await measure(lambda: queue.add("F", {}, opts), starts, n, backoff_ms / 1000)
    await worker.close()
    await queue.obliterate(force=True)
    await queue.close()
    return result


async def envoi_worker(url: str, n: int, backoff_ms: int, db: str) -> list[float]:
    registry = HandlerRegistry()
    starts = Starts()

    @registry.handler("F")
    async def handler(_data: object, context: JobContext) -> None:
        if starts.record():
            raise RuntimeError("first attempt fails")

    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, redis_url=url, redis_prefix=f"bench-{uuid.uuid4().hex[:8]}", database_url=db
    )
    envoi = Envoi(settings, registry=registry)
    worker = Worker(envoi)
    await worker.start()
    backoff = {"type": "fixed", "delay": backoff_ms}
    result = await measure(
        lambda: envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "F", {}, attempts=2, backoff=backoff),
        starts,
        n,
        backoff_ms / 1000,
    )
    await worker.close()
    await envoi.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=10)
    parser.add_argument("--backoff-ms", type=int, default=500)
    add_redis_argument(parser)
    args = parser.parse_args()
    with bench_environment(args.redis_url) as (url, db):
        baseline = asyncio.run(bare(url, args.n, args.backoff_ms))
        envoi = asyncio.run(envoi_worker(url, args.n, args.backoff_ms, db))
    print(f"n={args.n} retries after a {args.backoff_ms} ms backoff, Redis {url}")
    print(f"{'worker':30} {'median ms late':>15} {'max ms late':>12} {'x baseline':>10}")
    for name, values in (("bullmq Worker (baseline)", baseline), ("envoi Worker", envoi)):
        median = statistics.median(values)
        print(f"{name:30} {median:15.0f} {max(values):12.0f} {median / statistics.median(baseline):10.2f}")


if __name__ == "__main__":
    main()
