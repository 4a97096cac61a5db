"""Email end to end: N emails posted to `POST /v1/jobs/SEND_EMAIL` (one `envoi api` process), delivered
by one `envoi worker` process over STARTTLS to an aiosmtpd sink behind a network with a --delay seconds
round trip (`slow_smtp.py`). One connection per message (SMTP_POOL_MAX_MESSAGES=1, the baseline) against
kept connections (SMTP_POOL_SIZE = the worker's concurrency). Then, posting nothing: envoi's SMTP
channel alone (no queue, API or ledger), with one connection per message and pooled, the pool's own
ratio apart from the queue's cost; and a bare aiosmtplib client (which does not pipeline), one
connection per message (`aiosmtplib.send`'s way) and over as many kept connections.

    .venv/bin/python bench/email_pipeline.py [-n 400] [--concurrency 20] [--delay 0.02] [--reps 1]
        [--redis-url URL] [--database-url postgresql://...]

messages/s is N over the time from the first POST to the last message accepted by the sink; p99 is
enqueue (POST sent) to delivery (the sink's 250), both on this machine's clock. The sink does no AUTH,
which would add a round trip to each new connection. The database is a scratch SQLite file, or with
--database-url (BENCH_DATABASE_URL) a schema of its own on PostgreSQL, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import ssl
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib

from common import add_redis_argument, bench_environment, postgres_schema
from enqueue import obliterate
from envoi.channels.base import OutgoingEmail
from envoi.channels.email_smtp import SmtpEmailChannel
from envoi.config import Settings
from envoi.db.migrate import upgrade
from processes import Sink, envoi_api, envoi_env, envoi_worker, load, percentile, slow_sink
from slow_smtp import certificate

BASELINE = "one connection per message (baseline)"
POOLED = "envoi, pooled"
CHANNEL_BASE = "envoi SMTP channel alone, 1 conn/message"
CHANNEL = "envoi SMTP channel alone, pooled"
BARE = "bare aiosmtplib, kept connections"
BARE_BASE = "bare aiosmtplib, 1 conn/message"
#: Clients posting at once: enough to keep the queue ahead of the worker.
POSTERS = 20


def email(tag: str, i: int) -> dict[str, object]:
    return {
        "to": f"user{i}@example.com",
        "subject": f"{tag}-{i}",
        "html": "<p>Bonjour</p>",
        "text": "Bonjour",
    }


async def pipeline(base_url: str, sink: Sink, n: int, timeout: float) -> tuple[float, float]:
    """(messages/s, p99 seconds) for N posts through the API to the sink."""
    tag = f"run{uuid.uuid4().hex[:8]}"
    started, _latencies, _ = await load(base_url, n, POSTERS, lambda i: email(tag, i))
    accepted = await asyncio.to_thread(sink.wait_for, tag, n, timeout)
    delays = [accepted[f"{tag}-{i}"] - started[i] for i in range(n)]
    return n / (max(accepted.values()) - min(started)), percentile(delays, 0.99)


async def bare(sink: Sink, cert: Path, n: int, connections: int, *, reuse: bool) -> tuple[float, float]:
    """aiosmtplib alone, from `connections` tasks sharing N messages: over kept STARTTLS connections, or
    (`reuse=False`) a connection per message as `aiosmtplib.send` makes it (QUIT awaited)."""
    context = ssl.create_default_context(cafile=str(cert))
    todo = iter(range(n))
    latencies: list[float] = []
    tag = f"bare{uuid.uuid4().hex[:8]}"

    def connection() -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname="127.0.0.1", port=sink.port, start_tls=True, tls_context=context, timeout=30
        )

    async def sender() -> None:
        client = connection()
        if reuse:
            await client.connect()
        for i in todo:
            message = EmailMessage()
            message["From"], message["To"], message["Subject"] = (
                "bench@envoi.test",
                f"user{i}@example.com",
                f"{tag}-{i}",
            )
            message.set_content("Bonjour")
            begin = time.time()
            if reuse:
                await client.send_message(message)
            else:
                async with connection() as once:
                    await once.send_message(message)
            latencies.append(time.time() - begin)
        if reuse:
            await client.quit()

    begin = time.time()
    await asyncio.gather(*(sender() for _ in range(connections)))
    accepted = sink.accepted(tag)
    return n / (max(accepted.values()) - begin), percentile(latencies, 0.99)


async def channel_alone(
    sink: Sink, cert: Path, n: int, concurrency: int, *, max_messages: int
) -> tuple[float, float]:
    """envoi's SmtpEmailChannel (its pool, MIME building, error mapping) sending from `concurrency` tasks,
    with no queue, API or ledger: what the pool costs beside the bare client."""
    os.environ["SSL_CERT_FILE"] = str(cert)  # the channel trusts the sink as envoi's processes do
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        email_from="envoi <bench@envoi.test>",
        smtp_host="127.0.0.1",
        smtp_port=sink.port,
        smtp_security="starttls",
        smtp_pool_size=concurrency,
        smtp_pool_max_messages=max_messages,
    )
    channel = SmtpEmailChannel(settings)
    tag = f"chan{uuid.uuid4().hex[:8]}"
    todo = iter(range(n))
    latencies: list[float] = []

    async def sender() -> None:
        for i in todo:
            begin = time.time()
            await channel.send(
                OutgoingEmail(
                    to=f"user{i}@example.com", subject=f"{tag}-{i}", html="<p>Bonjour</p>", text="Bonjour",
                    idempotency_key=f"{tag}-{i}",
                )
            )  # fmt: skip
            latencies.append(time.time() - begin)

    begin = time.time()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    await channel.aclose()
    accepted = sink.accepted(tag)
    return n / (max(accepted.values()) - begin), percentile(latencies, 0.99)


@contextlib.asynccontextmanager
async def database(base: str | None, folder: Path) -> AsyncIterator[str]:
    if base is None:
        url = f"sqlite:///{folder / 'pipeline.db'}"
        upgrade(url)
        yield url
        return
    async with postgres_schema(base) as url:
        yield url


Results = dict[str, list[tuple[float, float]]]


async def main_async(args: argparse.Namespace, redis_url: str, folder: Path) -> Results:
    results: Results = {BASELINE: [], POOLED: [], CHANNEL_BASE: [], CHANNEL: [], BARE_BASE: [], BARE: []}
    timeout = 60 + args.n * args.delay * 12
    cert, key = certificate(folder)
    async with database(args.database_url, folder) as db:
        with slow_sink(folder, cert, key, args.delay) as sink:
            prefix = f"bench-{uuid.uuid4().hex[:8]}"
            env = envoi_env(redis_url=redis_url, prefix=prefix, database_url=db, sink=sink, cert=cert)
            size = {"SMTP_POOL_SIZE": str(args.concurrency)}
            pools = {
                BASELINE: {**size, "SMTP_POOL_MAX_MESSAGES": "1"},
                POOLED: {**size, "SMTP_POOL_MAX_MESSAGES": "1000"},
            }
            with envoi_api(env, folder / "api.log") as base_url:
                for rep in range(args.reps):
                    order = [BASELINE, POOLED, CHANNEL_BASE, CHANNEL, BARE_BASE, BARE]
                    for kind in order if rep % 2 == 0 else reversed(order):
                        if kind in (BARE, BARE_BASE):
                            sent = await bare(sink, cert, args.n, args.concurrency, reuse=kind == BARE)
                            results[kind].append(sent)
                            continue
                        if kind in (CHANNEL, CHANNEL_BASE):
                            per = 1 if kind == CHANNEL_BASE else 1000
                            alone = await channel_alone(
                                sink, cert, args.n, args.concurrency, max_messages=per
                            )
                            results[kind].append(alone)
                            continue
                        log = folder / f"worker-{rep}.log"
                        with envoi_worker({**env, **pools[kind]}, log, args.concurrency):
                            results[kind].append(await pipeline(base_url, sink, args.n, timeout))
    if args.redis_url:
        await obliterate(redis_url, prefix)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=20, help="worker concurrency = pool size")
    parser.add_argument("--delay", type=float, default=0.02, help="the network's round trip, seconds")
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    add_redis_argument(parser)
    args = parser.parse_args()
    with bench_environment(args.redis_url) as (redis_url, _sqlite), tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(main_async(args, redis_url, Path(tmp)))
    print(
        f"n={args.n} emails, worker concurrency {args.concurrency}, STARTTLS, a {args.delay * 1000:g} ms"
        f" round trip, {args.reps} repetition(s), database {'PostgreSQL' if args.database_url else 'SQLite'}"
    )
    base = statistics.median(rate for rate, _ in results[BASELINE])
    print(f"{'sender':40} {'messages/s':>11} {'p99 (ms)':>9} {'x baseline':>10}")
    for name, values in results.items():
        rate = statistics.median(r for r, _ in values)
        p99 = statistics.median(p for _, p in values)
        print(f"{name:40} {rate:11.0f} {p99 * 1000:9.0f} {rate / base:10.2f}")
    rate = {kind: statistics.median(r for r, _ in values) for kind, values in results.items()}
    print(f"envoi pooled / bare aiosmtplib: {rate[POOLED] / rate[BARE]:.2f}")
    print(f"envoi pooled / bare aiosmtplib, 1 conn/message: {rate[POOLED] / rate[BARE_BASE]:.2f}")
    print(f"channel alone: pooled / 1 conn per message: {rate[CHANNEL] / rate[CHANNEL_BASE]:.2f}")
    print(f"channel alone, pooled / bare aiosmtplib: {rate[CHANNEL] / rate[BARE]:.2f}")


if __name__ == "__main__":
    main()
