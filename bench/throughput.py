"""Worker throughput: bullmq's own worker against envoi's, same Redis, same run, two workloads.

    .venv/bin/python bench/throughput.py [-n 5000] [--concurrency 50] [--reps 3] [--workload noop --workload io]
                                         [--no-processes] [--redis-url URL]

Workloads: `noop` (the handler returns at once) and `io` (it awaits 10 ms, as a provider's answer would).
Rows, each repetition in a rotated order, all at the same concurrency:

- bullmq's `Worker`, given the Redis URL: the baseline (`x baseline` = 1.00);
- envoi's `Worker` on bullmq's own path (two script calls per job: `moveToFinished`, then `moveToActive`);
- envoi's `Worker` with fetch-next (`envoi.queue.fetch_next`: one `moveToFinished` per job);
- the same on uvloop's event loop (when uvloop is installed);
- `envoi worker` as a process, then `envoi worker --processes 2` (real processes, the CLI).

In-process rows add N jobs, start the worker and time its first to its last completion. Process rows add
N jobs to a paused queue, start the command, wait for every process's heartbeat, resume the queue and time
until no job is left (polled every 10 ms). Prints jobs/s (median of the repetitions) and the ratio to the
baseline, then `--processes 2` over one process and the cores the worker processes and redis-server kept
busy meanwhile (CPU seconds over wall seconds: on 2 cores, what is left to scale into).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import psutil
from bullmq import Queue
from bullmq import Worker as BullWorker
from redis.asyncio import Redis

from bench_jobs import IO_S
from common import add_redis_argument, bench_environment
from envoi.config import Settings
from envoi.db.migrate import upgrade
from envoi.queue import NOTIFICATIONS_QUEUE, HandlerRegistry, JobContext
from envoi.queue.heartbeat import heartbeat_key
from envoi.runtime import Envoi
from envoi.worker import Worker

try:
    import uvloop
except ImportError:  # optional: the uvloop row is left out
    uvloop = None

BENCH_DIR = Path(__file__).resolve().parent
OPTS = {"attempts": 5, "backoff": {"type": "exponential", "delay": 30000}, "removeOnComplete": True}
JOB_NAMES = {"noop": "BENCH_NOOP", "io": "BENCH_IO"}

BASELINE = "bullmq Worker (baseline)"
STOCK = "envoi Worker, bullmq's path"
FETCH_NEXT = "envoi Worker, fetch-next"
UVLOOP = "envoi Worker, fetch-next, uvloop"
ONE_PROCESS = "envoi worker (1 process)"
TWO_PROCESSES = "envoi worker --processes 2"


async def fill(url: str, prefix: str, name: str, n: int, *, paused: bool = False) -> None:
    queue = Queue(NOTIFICATIONS_QUEUE, {"connection": url, "prefix": prefix})
    if paused:
        await queue.pause()
    for start in range(0, n, 1000):
        await queue.addBulk(
            [{"name": name, "data": {"i": i}, "opts": OPTS} for i in range(start, min(n, start + 1000))]
        )
    await queue.close()


def _settings(url: str, prefix: str, db: str) -> Settings:
    return Settings(_env_file=None, redis_url=url, redis_prefix=prefix, database_url=db)  # type: ignore[call-arg]


class Clock:
    """Completion stamps; `done` once N are in."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.stamps: list[float] = []
        self.done = asyncio.Event()

    def tick(self) -> None:
        self.stamps.append(time.perf_counter())
        if len(self.stamps) == self.n:
            self.done.set()

    def rate(self) -> float:
        return (self.n - 1) / (self.stamps[-1] - self.stamps[0])


async def _work(workload: str) -> None:
    if workload == "io":
        await asyncio.sleep(IO_S)  # the workload itself


async def drain_bullmq(url: str, prefix: str, db: str, workload: str, n: int, concurrency: int) -> float:
    await fill(url, prefix, JOB_NAMES[workload], n)
    clock = Clock(n)

    async def process(job: Any, token: str) -> None:
        await _work(workload)
        clock.tick()

    # Given a URL, as a bullmq user starts it (and as the peer harness runs it).
    worker = BullWorker(
        NOTIFICATIONS_QUEUE, process, {"connection": url, "prefix": prefix, "concurrency": concurrency}
    )
    await clock.done.wait()
    await worker.close()
    return clock.rate()


async def drain_envoi(
    url: str, prefix: str, db: str, workload: str, n: int, concurrency: int, *, fetch_next: bool
) -> float:
    await fill(url, prefix, JOB_NAMES[workload], n)
    clock = Clock(n)
    registry = HandlerRegistry()

    @registry.handler(JOB_NAMES[workload])
    async def handler(_data: object, _context: JobContext) -> None:
        await _work(workload)
        clock.tick()

    envoi = Envoi(_settings(url, prefix, db), registry=registry)
    worker = Worker(envoi, concurrency=concurrency, fetch_next=fetch_next)
    await worker.start()
    await clock.done.wait()
    await worker.close()
    await envoi.close()
    return clock.rate()


async def drain_cli(
    url: str, prefix: str, db: str, workload: str, n: int, concurrency: int, processes: int
) -> float:
    """`envoi worker [--processes N]` as a user starts it, timed from the queue's resumption to its end."""
    await fill(url, prefix, JOB_NAMES[workload], n, paused=True)
    env = {
        **os.environ,
        "REDIS_URL": url,
        "REDIS_PREFIX": prefix,
        "DATABASE_URL": db,
        "WORKER_HEARTBEAT_INTERVAL_S": "0.2",
        "WORKER_DRAIN_DELAY_S": "1",
        "PYTHONPATH": os.pathsep.join([str(BENCH_DIR), os.environ.get("PYTHONPATH", "")]),
    }
    argv = [
        sys.executable,
        "-m",
        "envoi",
        "worker",
        "--jobs",
        "bench_jobs",
        "--concurrency",
        str(concurrency),
    ]
    if processes > 1:  # one process: `envoi worker` itself, no supervisor
        argv += ["--processes", str(processes)]
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    client = Redis.from_url(url)
    queue = Queue(NOTIFICATIONS_QUEUE, {"connection": url, "prefix": prefix})
    try:
        await _until(lambda: _beating(client, prefix, processes), what="the workers' heartbeats", proc=proc)
        workers = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
        cpu = _cpu_s(workers), await _redis_cpu_s(client)
        started = time.perf_counter()
        await queue.resume()
        await _until(lambda: _empty(client, prefix), what="the queue to drain", proc=proc, poll_s=0.01)
        elapsed = time.perf_counter() - started
        used = _cpu_s(workers) - cpu[0], await _redis_cpu_s(client) - cpu[1]
        CORES.setdefault(processes, []).append((used[0] / elapsed, used[1] / elapsed))
        return n / elapsed
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 60)
        await queue.close()
        await client.aclose()


#: Cores busy while the process rows ran, by process count: (envoi's processes, redis-server).
CORES: dict[int, list[tuple[float, float]]] = {}


def _cpu_s(processes: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in processes)


async def _redis_cpu_s(client: Redis) -> float:
    info = await client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def _beating(client: Redis, prefix: str, processes: int) -> bool:
    return int(await client.zcard(heartbeat_key(prefix))) >= processes


async def _empty(client: Redis, prefix: str) -> bool:
    # Plain reads in one round trip: bullmq's getJobCounts (a script) every 10 ms took a third of a core
    # from the workers being measured.
    key = f"{prefix}:{NOTIFICATIONS_QUEUE}"
    async with client.pipeline(transaction=False) as pipe:
        for name in ("wait", "paused", "active"):
            pipe.llen(f"{key}:{name}")
        pipe.zcard(f"{key}:prioritized")
        return not any(await pipe.execute())


async def _until(
    probe: Callable[[], Awaitable[bool]], *, what: str, proc: asyncio.subprocess.Process, poll_s: float = 0.05
) -> None:
    deadline = time.monotonic() + 120
    while not await probe():
        if proc.returncode is not None:
            raise SystemExit(f"envoi worker exited ({proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise SystemExit(f"gave up waiting for {what}")
        await asyncio.sleep(poll_s)  # polling a measurement, not a test


def _run(coro: Coroutine[Any, Any, float], *, fast_loop: bool = False) -> float:
    if fast_loop and uvloop is not None:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    return asyncio.run(coro)


def measure(kind: str, url: str, db: str, workload: str, n: int, concurrency: int) -> float:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    if kind == BASELINE:
        return _run(drain_bullmq(url, prefix, db, workload, n, concurrency))
    if kind in (STOCK, FETCH_NEXT, UVLOOP):
        coro = drain_envoi(url, prefix, db, workload, n, concurrency, fetch_next=kind != STOCK)
        return _run(coro, fast_loop=kind == UVLOOP)
    processes = 2 if kind == TWO_PROCESSES else 1
    return _run(drain_cli(url, prefix, db, workload, n, concurrency, processes))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--workload", action="append", choices=sorted(JOB_NAMES), help="repeatable (default: both)"
    )
    parser.add_argument(
        "--no-processes", action="store_true", help="leave out the `envoi worker` process rows"
    )
    add_redis_argument(parser)
    args = parser.parse_args()
    kinds = [BASELINE, STOCK, FETCH_NEXT] + ([UVLOOP] if uvloop is not None else [])
    if not args.no_processes:
        kinds += [ONE_PROCESS, TWO_PROCESSES]
    with bench_environment(args.redis_url) as (url, db):
        upgrade(db)
        print(
            f"n={args.n} jobs, concurrency {args.concurrency}, {args.reps} repetitions, Redis {url}, {os.cpu_count()} CPUs"
        )
        for workload in args.workload or ["noop", "io"]:
            rates: dict[str, list[float]] = {kind: [] for kind in kinds}
            for rep in range(args.reps):
                # Rotate the order so that no row always runs on a warmer Redis or a quieter machine.
                order = kinds[rep % len(kinds) :] + kinds[: rep % len(kinds)]
                for kind in order:
                    rates[kind].append(measure(kind, url, db, workload, args.n, args.concurrency))
            report(workload, rates)


def report(workload: str, rates: dict[str, list[float]]) -> None:
    median = {kind: statistics.median(values) for kind, values in rates.items()}
    baseline = median[BASELINE]
    print(f"\nworkload {workload}")
    print(f"| {'worker':34} | {'jobs/s (median)':>15} | {'runs':>22} | {'x baseline':>10} |")
    print(f"|{'-' * 36}|{'-' * 16}:|{'-' * 23}:|{'-' * 11}:|")
    for kind, values in rates.items():
        runs = ", ".join(f"{v:.0f}" for v in values)
        print(f"| {kind:34} | {median[kind]:15.0f} | {runs:>22} | {median[kind] / baseline:10.2f} |")
    if TWO_PROCESSES in median:
        print(f"--processes 2 / 1 process: {median[TWO_PROCESSES] / median[ONE_PROCESS]:.2f}x")
        for processes, samples in sorted(CORES.items()):
            envoi_cores = statistics.median(c[0] for c in samples)
            redis_cores = statistics.median(c[1] for c in samples)
            print(
                f"cores busy with {processes} process(es): envoi {envoi_cores:.2f}, redis-server {redis_cores:.2f}"
            )
        CORES.clear()


if __name__ == "__main__":
    main()
