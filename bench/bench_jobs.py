"""The benchmark's jobs, for `envoi worker --jobs bench_jobs` (bench/ on PYTHONPATH): a no-op and 10 ms
of I/O (an await, as a provider's answer would be)."""

from __future__ import annotations

import asyncio

from envoi import JobContext, job

#: The I/O workload's wait, seconds.
IO_S = 0.010


@job("BENCH_NOOP")
async def noop(_data: object, _ctx: JobContext) -> None:
    return None


@job("BENCH_IO")
async def io(_data: object, _ctx: JobContext) -> None:
    await asyncio.sleep(IO_S)  # the workload itself: a 10 ms answer
