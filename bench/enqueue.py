"""Enqueue rate and latency: envoi against raw bullmq and a raw redis-py LPUSH, in the same run, same Redis.

    .venv/bin/python bench/enqueue.py [-n 5000] [--rounds 3] [--redis-url redis://127.0.0.1:6379/0]

Without --redis-url (or BENCH_REDIS_URL) a private redis-server is started. The cases take turns for
`--rounds` rounds; each prints its rate in jobs/s (median of the rounds), that rate as a ratio to the
redis-py LPUSH floor measured in the same run, the median and p99 of one call (for the bulk cases a
call adds a chunk of CHUNK_SIZE jobs), and this process's CPU time per job (median of the rounds: on a
shared machine, what the client itself costs, apart from the waits for a CPU). Then, once each: a delayed job (recipient indexed or not), the
inline fallback (QUEUE_ENABLED=false, Redis down) and `SyncClient.enqueue` from a plain thread.

`--profile LINES` profiles `envoi enqueue, one at a time` instead (cProfile on the CPU clock).

The goals (issue 16): one at a time at least 0.8x the floor; 50 concurrent callers at least half the
rate of bullmq's addBulk; a p99 under 2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import re
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from bullmq import Queue

from common import add_redis_argument, bench_environment
from envoi.config import Settings
from envoi.embedded_redis import free_port
from envoi.queue import NOTIFICATIONS_QUEUE, HandlerRegistry, JobContext
from envoi.queue.base import CHUNK_SIZE
from envoi.runtime import Envoi
from envoi.sync_client import SyncClient

DATA = {"to": "jane@example.com", "subject": "Hello", "html": "<p>Hi</p>", "metadata": {"userId": "u1"}}
OPTS = {"attempts": 5, "backoff": {"type": "exponential", "delay": 30000}, "removeOnComplete": True}
CALLERS = 50
FLOOR = "redis-py LPUSH, one at a time (floor, baseline)"


@dataclass
class Case:
    name: str
    #: jobs/s of each round.
    rates: list[float] = field(default_factory=list)
    #: seconds per call, every round.
    samples: list[float] = field(default_factory=list)
    #: this process's CPU seconds per job, each round.
    cpu: list[float] = field(default_factory=list)
    #: Redis's CPU seconds per job, each round (where measured).
    server: list[float] = field(default_factory=list)

    def add(self, jobs: int, wall: float, samples: list[float], cpu: float) -> None:
        self.rates.append(jobs / wall)
        self.samples.extend(samples)
        self.cpu.append(cpu / jobs)


async def redis_seconds(client: aioredis.Redis) -> float:
    """Redis's CPU seconds since its start (INFO cpu: its main thread's work, the network's included;
    commandstats would count a script's own commands twice, inside and outside the script)."""
    stats = await client.info("cpu")
    return float(stats["used_cpu_user_main_thread"]) + float(stats["used_cpu_sys_main_thread"])


async def measured(case: Case, client: aioredis.Redis, timing: Awaitable[Timing]) -> None:
    """Add `timing` to `case`, with Redis's CPU time per job."""
    before = await redis_seconds(client)
    jobs, wall, samples, cpu = await timing
    case.server.append((await redis_seconds(client) - before) / jobs)
    case.add(jobs, wall, samples, cpu)


Timing = tuple[int, float, list[float], float]


async def timed(n: int, call: Callable[[int], Awaitable[Any]]) -> list[float]:
    """Seconds per call, `n` calls one after another (the other bench scripts time with it)."""
    samples = []
    for i in range(n):
        started = time.perf_counter()
        await call(i)
        samples.append(time.perf_counter() - started)
    return samples


def summary(samples: list[float]) -> tuple[float, float]:
    """Median and p95 in microseconds (bench/idempotency.py, bench/recipient_policy.py)."""
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e6, ordered[int(len(ordered) * 0.95)] * 1e6


async def one_at_a_time(n: int, call: Callable[[int], Awaitable[Any]]) -> Timing:
    samples = []
    begun, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        started = time.perf_counter()
        await call(i)
        samples.append(time.perf_counter() - started)
    return n, time.perf_counter() - begun, samples, time.process_time() - cpu


async def in_bulk(n: int, call: Callable[[list[int]], Awaitable[Any]]) -> Timing:
    samples = []
    begun, cpu = time.perf_counter(), time.process_time()
    for start in range(0, n, CHUNK_SIZE):
        started = time.perf_counter()
        await call(list(range(start, min(n, start + CHUNK_SIZE))))
        samples.append(time.perf_counter() - started)
    return n, time.perf_counter() - begun, samples, time.process_time() - cpu


async def concurrently(n: int, call: Callable[[int], Awaitable[Any]]) -> Timing:
    """CALLERS tasks, each adding its share one call after another (as concurrent API requests do)."""
    samples: list[float] = []

    async def caller(first: int) -> None:
        for i in range(first, n, CALLERS):
            started = time.perf_counter()
            await call(i)
            samples.append(time.perf_counter() - started)

    begun, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(caller(first) for first in range(CALLERS)))
    return n, time.perf_counter() - begun, samples, time.process_time() - cpu


def noop_registry() -> HandlerRegistry:
    registry = HandlerRegistry()

    @registry.handler("SEND_EMAIL")
    async def send(_data: object, context: JobContext) -> None:
        return None

    return registry


def settings_for(url: str, prefix: str, db: str, **extra: Any) -> Settings:
    return Settings(_env_file=None, redis_url=url, redis_prefix=prefix, database_url=db, **extra)


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


async def rounds(n: int, reps: int, url: str, db: str) -> dict[str, Case]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    cases: dict[str, Case] = {}

    def case(name: str) -> Case:
        return cases.setdefault(name, Case(name))

    client = aioredis.Redis.from_url(url)
    raw = Queue(NOTIFICATIONS_QUEUE, {"connection": url, "prefix": f"{prefix}-raw"})
    envoi = Envoi(settings_for(url, prefix, db), registry=noop_registry())
    queue = envoi.queue
    for _ in range(reps):
        await measured(
            case(FLOOR), client, one_at_a_time(n, lambda i: client.lpush(f"{prefix}:floor", str(i)))
        )
        await client.delete(f"{prefix}:floor")
        await measured(
            case("bullmq Queue.add, one at a time"),
            client,
            one_at_a_time(n, lambda i: raw.add("SEND_EMAIL", DATA, OPTS)),
        )
        await measured(
            case("envoi enqueue, one at a time"),
            client,
            one_at_a_time(n, lambda i: queue.enqueue(NOTIFICATIONS_QUEUE, "SEND_EMAIL", DATA)),
        )
        await measured(
            case(f"bullmq Queue.addBulk, chunks of {CHUNK_SIZE}"),
            client,
            in_bulk(
                n, lambda ids: raw.addBulk([{"name": "SEND_EMAIL", "data": DATA, "opts": OPTS}] * len(ids))
            ),
        )
        await measured(
            case(f"envoi enqueue_many, chunks of {CHUNK_SIZE}"),
            client,
            in_bulk(n, lambda ids: queue.enqueue_many(NOTIFICATIONS_QUEUE, "SEND_EMAIL", [DATA] * len(ids))),
        )
        await measured(
            case(f"bullmq Queue.add, {CALLERS} concurrent callers"),
            client,
            concurrently(n, lambda i: raw.add("SEND_EMAIL", DATA, OPTS)),
        )
        await measured(
            case(f"envoi enqueue, {CALLERS} concurrent callers (coalesced)"),
            client,
            concurrently(n, lambda i: queue.enqueue(NOTIFICATIONS_QUEUE, "SEND_EMAIL", DATA)),
        )
        await raw.obliterate(force=True)
        await obliterate(url, prefix)
    await raw.close()
    await client.aclose()
    await envoi.close()
    return cases


async def once(n: int, url: str, db: str) -> dict[str, Case]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    cases: dict[str, Case] = {}

    async def measure(name: str, envoi: Envoi, count: int, **kwargs: Any) -> None:
        cases[name] = Case(name)
        cases[name].add(
            *await one_at_a_time(
                count, lambda i: envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "SEND_EMAIL", DATA, **kwargs)
            )
        )

    envoi = Envoi(settings_for(url, prefix, db), registry=noop_registry())
    # A scheduled job: its recipient is indexed for the admin search (one more Redis command).
    await measure("envoi enqueue, delayed 1 h (recipient indexed)", envoi, n, delay=3600)
    await envoi.close()
    await obliterate(url, prefix)

    unindexed = Envoi(settings_for(url, prefix, db, recipient_index_days=0), registry=noop_registry())
    await measure("envoi enqueue, delayed 1 h (no index)", unindexed, n, delay=3600)
    await unindexed.close()
    await obliterate(url, prefix)

    inline = Envoi(settings_for(url, prefix, db, queue_enabled=False), registry=noop_registry())
    await measure("envoi enqueue, QUEUE_ENABLED=false (inline no-op)", inline, n)
    await inline.close()

    dead_url = f"redis://127.0.0.1:{free_port()}/0"
    dead = Envoi(
        settings_for(dead_url, prefix, db, redis_breaker_cooldown_ms=3_600_000), registry=noop_registry()
    )
    await measure("envoi enqueue, Redis down: first call", dead, 1)
    await measure("envoi enqueue, Redis down: breaker open (inline no-op)", dead, n)
    await dead.close()
    return cases


def sync_client_case(n: int, url: str, db: str) -> Case:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    os.environ.update({"REDIS_URL": url, "REDIS_PREFIX": prefix, "DATABASE_URL": db})
    name = "envoi SyncClient.enqueue (from a thread)"
    samples = []
    with SyncClient() as client:
        begun, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            started = time.perf_counter()
            client.enqueue(NOTIFICATIONS_QUEUE, "SEND_EMAIL", DATA)
            samples.append(time.perf_counter() - started)
        wall, cpu = time.perf_counter() - begun, time.process_time() - cpu
    asyncio.run(obliterate(url, prefix))
    result = Case(name)
    result.add(n, wall, samples, cpu)
    return result


async def profile(n: int, url: str, db: str, lines: int) -> None:
    """`envoi enqueue, one at a time` under cProfile, on the process's CPU clock (a shared machine blurs
    wall time): the top lines by own time, then envoi's own frames by cumulative time."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    envoi = Envoi(settings_for(url, prefix, db), registry=noop_registry())
    for _ in range(500):  # warm-up: connections, scripts, caches
        await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "SEND_EMAIL", DATA)
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    for _ in range(n):
        await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "SEND_EMAIL", DATA)
    profiler.disable()
    await envoi.close()
    await obliterate(url, prefix)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(lines)
    stats.sort_stats("cumulative").print_stats(r"envoi/", lines)
    for line in out.getvalue().splitlines():
        if line.strip():
            print(re.sub(r"\S*/(site-packages|python3\.\d+|src)/", "", line)[:150])


def print_cases(cases: dict[str, Case], baseline: str, *, width: int) -> None:
    """The table every enqueue-side script prints: rate as a ratio to `baseline`, latencies, CPU per job."""
    base = statistics.median(cases[baseline].rates)
    print(
        f"{'case':{width}} {'jobs/s':>8} {'x baseline':>10} {'median us':>10} {'p99 us':>8} {'CPU us/job':>10}"
        f" {'Redis CPU us/job':>16}"
    )
    for name, case in cases.items():
        rate, cpu = statistics.median(case.rates), statistics.median(case.cpu) * 1e6
        median, p99 = statistics.median(case.samples) * 1e6, percentile(case.samples, 0.99) * 1e6
        server = f"{statistics.median(case.server) * 1e6:16.1f}" if case.server else f"{'':16}"
        print(
            f"{name:{width}} {rate:8.0f} {rate / base:10.2f} {median:10.1f} {p99:8.0f} {cpu:10.1f} {server}"
        )


def add_bound(cases: dict[str, Case]) -> None:
    """The best a single add could do at the floor's client cost: the floor's time per call plus the CPU
    bullmq's add costs Redis beyond an LPUSH (one at a time, the client waits for both)."""
    floor, add = cases[FLOOR], cases["bullmq Queue.add, one at a time"]
    per_call = 1 / statistics.median(floor.rates)
    extra = statistics.median(add.server) - statistics.median(floor.server)
    print(
        f"bullmq's add costs Redis {extra * 1e6:.1f} us of CPU more than an LPUSH: an add over a client "
        f"as cheap as the floor's could reach at most {per_call / (per_call + extra):.2f}x the floor"
    )


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="jobs per case and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", type=int, metavar="LINES", help="profile one-at-a-time enqueue instead")
    add_redis_argument(parser)
    args = parser.parse_args()
    if args.profile:
        with bench_environment(args.redis_url) as (url, db):
            asyncio.run(profile(args.n, url, db, args.profile))
        return
    with bench_environment(args.redis_url) as (url, db):
        cases = asyncio.run(rounds(args.n, args.rounds, url, db))
        cases.update(asyncio.run(once(args.n, url, db)))
        sync = sync_client_case(args.n, url, db)
        cases[sync.name] = sync
    print(f"n={args.n} jobs per case, {args.rounds} rounds (rates: median of the rounds), Redis {url}")
    print_cases(cases, FLOOR, width=58)
    add_bound(cases)


if __name__ == "__main__":
    main()
