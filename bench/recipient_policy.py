"""What the recipient policy costs a send: the worker's check before each message leaves.

    .venv/bin/python bench/recipient_policy.py [-n 2000] [--database-url postgresql://...]

`RecipientPolicy.decide` one call after another: a transactional message (no query), a marketing one
to a recipient with nothing stored, with an opt-out (suppressed), and with quiet hours set (outside
them), on a scratch SQLite file and, with --database-url (or BENCH_DATABASE_URL), on PostgreSQL in a
schema of its own; each beside the floor of its engine (a transaction running SELECT 1). The check
reads two primary keys; the floor is what any SQL record costs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from common import add_redis_argument
from enqueue import summary, timed
from envoi.db.migrate import upgrade
from envoi.db.session import Database
from envoi.recipients import Category, Preference, PreferencesService, RecipientPolicy
from idempotency import postgres_schema, round_trip

#: The baseline of each engine's rows: what any SQL record costs.
BASELINE = "SQL round trip, {} (SELECT 1, the floor)"


async def cases(n: int, label: str, url: str) -> dict[str, list[float]]:
    db = Database(url)
    preferences = PreferencesService(db)
    # 03:00 UTC is outside 21:00-02:00 in UTC: the window is read and checked, the message goes.
    policy = RecipientPolicy(
        preferences=preferences,
        quiet_hours=None,
        default_timezone="UTC",
        tokens=None,
        api_url="http://localhost",
        clock=lambda: datetime(2026, 12, 1, 3, 0, tzinfo=UTC),
    )
    await preferences.update("off@example.com", [Preference("email", "marketing", False)])
    await preferences.update("quiet@example.com", quiet_hours="21:00-02:00")

    def decide(category: Category, recipient: str) -> object:
        return policy.decide(channel="email", category=category, recipients=[recipient], timezone=None)

    results = {
        BASELINE.format(label): await timed(n, lambda i: round_trip(db)),
        f"transactional, {label}": await timed(n, lambda i: decide(Category.TRANSACTIONAL, "a@example.com")),
        f"marketing, nothing stored, {label}": await timed(
            n, lambda i: decide(Category.MARKETING, f"new-{i}@example.com")
        ),
        f"marketing, opted out, {label}": await timed(
            n, lambda i: decide(Category.MARKETING, "off@example.com")
        ),
        f"marketing, own quiet hours, {label}": await timed(
            n, lambda i: decide(Category.MARKETING, "quiet@example.com")
        ),
    }
    await db.dispose()
    return results


async def main_async(n: int, sqlite_url: str, postgres: str | None) -> dict[str, list[float]]:
    upgrade(sqlite_url)
    results = await cases(n, "SQLite", sqlite_url)
    if postgres:
        async with postgres_schema(postgres) as url:
            results.update(await cases(n, "PostgreSQL", url))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    # Taken as every bench script takes it (tests/bench calls them alike); the policy uses no Redis.
    add_redis_argument(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(main_async(args.n, f"sqlite:///{Path(tmp) / 'bench.db'}", args.database_url))
    print(f"n={args.n} per case")
    print(f"{'case':45} {'median us':>10} {'p95 us':>10} {'x baseline':>10}")
    for name, samples in results.items():
        engine = "PostgreSQL" if "PostgreSQL" in name else "SQLite"
        floor, _ = summary(results[BASELINE.format(engine)])
        median, p95 = summary(samples)
        print(f"{name:45} {median:10.1f} {p95:10.1f} {median / floor:10.2f}")


if __name__ == "__main__":
    main()
