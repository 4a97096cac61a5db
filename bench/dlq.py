"""Dead-letter pages on PostgreSQL with 1,000,000 rows: how long `FailedJobService.page` takes.

    .venv/bin/python bench/dlq.py [-n 1000000] [--runs 50] [--database-url postgresql://...]

(BENCH_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/test.) Works in a schema of its own,
created, migrated with the Alembic chain and dropped at the end. Rows are made by one INSERT ... SELECT
over generate_series. Each case is timed end to end through the service (SQLAlchemy, psycopg, ORM
objects): median and p95 of --runs calls, after 3 warm-up calls. Then prints EXPLAIN ANALYZE of the
filtered page query, and the same cases again with only the single-column indexes (the chain downgraded
below 20260118000000, which adds the (column, id) indexes) to show what those indexes buy.
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

import sqlalchemy as sa

from envoi.db.migrate import downgrade, upgrade
from envoi.db.models import FailedJobStatus
from envoi.db.session import Database, normalize_url
from envoi.dead_letters.service import FailedJobFilters, FailedJobService

SEED = """
INSERT INTO failed_jobs (id, queue_name, job_name, job_id, job_data, job_options, error_message,
                         stacktrace, attempts_made, status, retried_job_id, finished_on, created_at,
                         updated_at)
SELECT '01J' || lpad(n::text, 23, '0'),
       CASE WHEN n % 3 = 0 THEN 'webhooks' ELSE 'notifications' END,
       CASE WHEN n <= 2000 THEN 'LEGACY_PUSH'
            ELSE (ARRAY['SEND_EMAIL','SEND_SMS','SEND_WHATSAPP','CREATE_INAPP_NOTIFICATION'])[n % 4 + 1] END,
       n::text,
       '{"to": "user@example.com", "subject": "Hello"}'::json,
       '{"attempts": 5, "backoff": {"type": "exponential", "delay": 30000}}'::json,
       'SMTP 451 temporary failure #' || n,
       '[]'::json, 5,
       CASE WHEN n % 10 = 0 THEN 'RETRIED' WHEN n % 1000 = 1 THEN 'RESOLVED' ELSE 'FAILED' END,
       NULL, 1700000000000 + n,
       now() - make_interval(secs => (:count - n) / 1000.0),
       now()
FROM generate_series(:start, :stop) AS n
"""

#: name -> (filters, which page: 1, or 2 through the first page's cursor)
CASES: list[tuple[str, FailedJobFilters, int]] = [
    ("no filter", FailedJobFilters(), 1),
    ("queue=webhooks (1/3 of rows)", FailedJobFilters(queue_name="webhooks"), 1),
    ("job_name=SEND_WHATSAPP (1/4)", FailedJobFilters(job_name="SEND_WHATSAPP"), 1),
    ("status=RETRIED (1/10)", FailedJobFilters(status=FailedJobStatus.RETRIED), 1),
    ("status=RESOLVED (1/1000)", FailedJobFilters(status=FailedJobStatus.RESOLVED), 1),
    ("job_name=LEGACY_PUSH (2,000 oldest rows)", FailedJobFilters(job_name="LEGACY_PUSH"), 1),
    ("queue=webhooks, next page via cursor", FailedJobFilters(queue_name="webhooks"), 2),
]

#: The filtered page queries whose plans are printed.
PLANS: list[tuple[str, FailedJobFilters]] = [
    ("queue filter", FailedJobFilters(queue_name="webhooks")),
    ("status=RESOLVED (rare)", FailedJobFilters(status=FailedJobStatus.RESOLVED)),
    ("job_name=LEGACY_PUSH (rare and old)", FailedJobFilters(job_name="LEGACY_PUSH")),
]


def schema_url(base: str, schema: str) -> str:
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}"


def admin(base: str, sql: str) -> None:
    engine = sa.create_engine(normalize_url(base, asynchronous=False))
    with engine.begin() as connection:
        connection.execute(sa.text(sql))
    engine.dispose()


def seed(url: str, rows: int) -> float:
    engine = sa.create_engine(normalize_url(url, asynchronous=False))
    started = time.perf_counter()
    with engine.begin() as connection:
        for start in range(1, rows + 1, 250_000):
            stop = min(start + 250_000 - 1, rows)
            connection.execute(sa.text(SEED), {"start": start, "stop": stop, "count": rows})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("VACUUM ANALYZE failed_jobs"))
    engine.dispose()
    return time.perf_counter() - started


async def timed(runs: int, call: Callable[[], Awaitable[Any]]) -> tuple[float, float]:
    for _ in range(3):
        await call()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[max(0, round(0.95 * len(samples)) - 1)]


async def measure(url: str, runs: int, limit: int) -> list[tuple[str, float, float]]:
    db = Database(url)
    service = FailedJobService(db=db)
    results = []
    try:
        for name, filters, page in CASES:
            cursor = None
            if page == 2:
                cursor = (await service.page(filters, limit=limit)).next_cursor

            async def call(filters: FailedJobFilters = filters, cursor: str | None = cursor) -> Any:
                result = await service.page(filters, limit=limit, cursor=cursor)
                assert result.items
                return result

            median, p95 = await timed(runs, call)
            results.append((name, median, p95))
        median, p95 = await timed(max(5, runs // 10), service.stats)
        results.append(("stats() (GROUP BY over the whole table)", median, p95))
    finally:
        await db.dispose()
    return results


async def explain(url: str, filters: FailedJobFilters, limit: int) -> str:
    db = Database(url)
    service = FailedJobService(db=db)
    try:
        statement = service.page_query(filters, limit=limit)
        sql = statement.compile(dialect=db.engine.dialect, compile_kwargs={"literal_binds": True})
        async with db.engine.connect() as connection:
            plan = await connection.execute(sa.text(f"EXPLAIN (ANALYZE, BUFFERS) {sql}"))
            return f"{sql}\n\n" + "\n".join(line for (line,) in plan)
    finally:
        await db.dispose()


def report(title: str, results: list[tuple[str, float, float]]) -> None:
    print(f"\n{title}\n")
    print("| page (limit 50, newest first) | median ms | p95 ms |")
    print("|---|---:|---:|")
    for name, median, p95 in results:
        print(f"| {name} | {median:.2f} | {p95:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("-n", "--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    schema = f"bench_dlq_{uuid.uuid4().hex[:8]}"
    admin(args.database_url, f'CREATE SCHEMA "{schema}"')
    url = schema_url(args.database_url, schema)
    try:
        upgrade(url)
        seconds = seed(url, args.rows)
        print(f"Seeded {args.rows:,} rows in {seconds:.1f}s (schema {schema}); {args.runs} runs per case.")
        report("With the (column, id) indexes (head):", asyncio.run(measure(url, args.runs, args.limit)))
        for title, filters in PLANS:
            print(f"\nEXPLAIN ANALYZE, {title}:\n")
            print(asyncio.run(explain(url, filters, args.limit)))
        downgrade(url, "20260117000000")
        admin(url, "ANALYZE failed_jobs")
        report(
            "Single-column indexes only (20260117000000):",
            asyncio.run(measure(url, max(5, args.runs // 5), args.limit)),
        )
        for title, filters in PLANS[1:]:
            print(f"\nEXPLAIN ANALYZE, {title}, single-column indexes only:\n")
            print(asyncio.run(explain(url, filters, args.limit)))
    finally:
        admin(args.database_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
