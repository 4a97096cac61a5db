"""What tracing costs an enqueue: off (the baseline), and on with the SDK, in the same run, same Redis.

    .venv/bin/python bench/tracing.py [-n 5000] [--rounds 3] [--redis-url redis://127.0.0.1:6379/0]

The cases take turns for `--rounds` rounds; each prints its rate (median of the rounds) as a ratio to
the tracing-off rate, the median and p99 of one call, and this process's CPU time per job. "On" is
the SDK with a batch span processor and an exporter that drops the spans: what envoi's spans cost,
without an export's network. Then the cost of one `tracing.span()` block with tracing off, beside an
empty `with nullcontext()`: the whole of what tracing adds when it is off or the extra is absent (the
same path: no tracer, one shared null context).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import time
import uuid
from collections.abc import Sequence

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from common import add_redis_argument, bench_environment
from enqueue import DATA, Case, noop_registry, obliterate, one_at_a_time, print_cases, settings_for
from envoi import tracing
from envoi.queue import NOTIFICATIONS_QUEUE
from envoi.runtime import Envoi

OFF = "envoi enqueue, one at a time, tracing off (baseline)"
ON = "envoi enqueue, one at a time, tracing on (SDK, spans dropped)"


class Dropping(SpanExporter):
    """Takes every span and keeps none."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


async def rounds(n: int, reps: int, url: str, db: str) -> dict[str, Case]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    cases = {OFF: Case(OFF), ON: Case(ON)}
    envoi = Envoi(settings_for(url, prefix, db), registry=noop_registry())

    async def enqueue(_i: int) -> object:
        return await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "SEND_EMAIL", DATA)

    for _ in range(reps):
        for name, on in ((OFF, False), (ON, True)):
            tracing.configure(enabled=on)
            cases[name].add(*await one_at_a_time(n, enqueue))
            await obliterate(url, prefix)
    tracing.configure(enabled=False)
    await envoi.close()
    return cases


def span_off_ns(n: int) -> tuple[float, float]:
    """ns per `with tracing.span(...)` (tracing off) and per `with nullcontext()`: medians of 5 runs."""
    attributes = {"messaging.system": "bullmq"}
    null = contextlib.nullcontext()

    def timed(block: str) -> float:
        runs = []
        for _ in range(5):
            started = time.perf_counter_ns()
            if block == "span":
                for _ in range(n):
                    with tracing.span("add notifications.SEND_EMAIL", kind="producer", attributes=attributes):
                        pass
            else:
                for _ in range(n):
                    with null:
                        pass
            runs.append((time.perf_counter_ns() - started) / n)
        return statistics.median(runs)

    return timed("span"), timed("null")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=5000, help="jobs per case and round")
    parser.add_argument("--rounds", type=int, default=3)
    add_redis_argument(parser)
    args = parser.parse_args()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Dropping()))
    trace.set_tracer_provider(provider)
    with bench_environment(args.redis_url) as (url, db):
        cases = asyncio.run(rounds(args.n, args.rounds, url, db))
    print(f"n={args.n} jobs per case, {args.rounds} rounds (rates: median of the rounds), Redis {url}")
    print_cases(cases, OFF, width=62)
    span_ns, null_ns = span_off_ns(args.n * 200)
    print(
        f"tracing.span() block, tracing off: {span_ns:.0f} ns; empty `with nullcontext()`: {null_ns:.0f} ns"
    )
    provider.shutdown()


if __name__ == "__main__":
    main()
