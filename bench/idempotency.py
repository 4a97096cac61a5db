"""What an HTTP Idempotency-Key costs a request: the SQL claim against the Redis claim it replaced.

    .venv/bin/python bench/idempotency.py [-n 2000] [--redis-url URL] [--database-url postgresql://...]

Each case claims a fresh key per call, one call after another (the common case: a new request); "seen"
claims one key again (a retried request). The Redis case is the old claim (`SET NX EX`); the SQL cases
are `IdempotencyKeys.claim` (`INSERT ... ON CONFLICT DO NOTHING RETURNING`, and a read when the key
exists) on a scratch SQLite file and, with --database-url (or BENCH_DATABASE_URL), on PostgreSQL in a
schema of its own, dropped at the end; each beside the floor of its engine (a transaction running SELECT 1).
`envoi enqueue` is printed for scale: what the request pays anyway.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import uuid

import redis.asyncio as aioredis
import sqlalchemy as sa

from common import add_redis_argument, bench_environment, postgres_schema
from enqueue import DATA, noop_registry, obliterate, settings_for, summary, timed
from envoi.db.migrate import upgrade
from envoi.db.session import Database
from envoi.notifications.idempotency import IdempotencyKeys
from envoi.queue import NOTIFICATIONS_QUEUE
from envoi.runtime import Envoi

TTL_S = 24 * 3600


async def round_trip(db: Database) -> None:
    """One transaction with one statement on the engine's connection: what any SQL record costs."""
    async with db.engine.begin() as connection:
        await connection.execute(sa.text("SELECT 1"))


async def sql_cases(n: int, label: str, url: str) -> dict[str, list[float]]:
    db = Database(url)
    keys = IdempotencyKeys(db)
    results = {
        f"SQL round trip, {label} (SELECT 1, the floor)": await timed(n, lambda i: round_trip(db)),
        f"SQL claim, {label}, new key": await timed(n, lambda i: keys.claim("SEND_SMS", f"k-{i}", f"j-{i}")),
        f"SQL claim, {label}, seen key": await timed(n, lambda i: keys.claim("SEND_SMS", "k-0", "j-x")),
    }
    await db.dispose()
    return results


async def main_async(n: int, redis_url: str, sqlite_url: str, postgres: str | None) -> dict[str, list[float]]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    client = aioredis.Redis.from_url(redis_url)
    results = {
        "Redis SET NX EX (the old claim, baseline)": await timed(
            n, lambda i: client.set(f"{prefix}:idem:{i}", "job", nx=True, ex=TTL_S)
        )
    }
    keys = [key async for key in client.scan_iter(f"{prefix}:idem:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()

    upgrade(sqlite_url)
    results.update(await sql_cases(n, "SQLite", sqlite_url))
    if postgres:
        async with postgres_schema(postgres) as url:
            results.update(await sql_cases(n, "PostgreSQL", url))

    envoi = Envoi(settings_for(redis_url, prefix, sqlite_url), registry=noop_registry())
    results["envoi enqueue, Redis (for scale)"] = await timed(
        n, lambda i: envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "SEND_EMAIL", DATA)
    )
    await envoi.close()
    await obliterate(redis_url, prefix)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    add_redis_argument(parser)
    args = parser.parse_args()
    with bench_environment(args.redis_url) as (redis_url, sqlite_url):
        results = asyncio.run(main_async(args.n, redis_url, sqlite_url, args.database_url))
    baseline, _ = summary(results["Redis SET NX EX (the old claim, baseline)"])
    print(f"n={args.n} per case, Redis {redis_url}")
    print(f"{'case':50} {'median us':>10} {'p95 us':>10} {'x baseline':>10}")
    for name, samples in results.items():
        median, p95 = summary(samples)
        print(f"{name:50} {median:10.1f} {p95:10.1f} {median / baseline:10.2f}")


if __name__ == "__main__":
    main()
