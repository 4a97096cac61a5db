"""`POST /v1/jobs/SEND_EMAIL` on one `envoi api` process under a bounded load: queued (the job goes to
Redis, the answer is 202 at once) against synchronous (QUEUE_ENABLED=false: the request sends the email
itself, to an SMTP sink over STARTTLS whose every reply comes after --delay, 50 ms by default).

    .venv/bin/python bench/http.py [-n 2000] [--concurrency 50] [--delay 0.05] [--redis-url URL]
        [--database-url postgresql://...]

The load generator is `--concurrency` httpx clients in this process, each posting its next request when
the last is answered (a closed loop: the load never outruns the server). It shares the machine's cores
with the API process, so the queued figure is a floor. No worker runs: the queued jobs stay in Redis
(a private redis-server unless --redis-url, where they are removed at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import uuid
from pathlib import Path

from common import add_redis_argument, bench_environment
from email_pipeline import database
from enqueue import obliterate
from processes import envoi_api, envoi_env, load, percentile, slow_sink
from slow_smtp import certificate

SYNCHRONOUS = "QUEUE_ENABLED=false, SMTP (baseline)"
QUEUED = "queued (202, job in Redis)"


def email(i: int) -> dict[str, object]:
    return {"to": f"user{i}@example.com", "subject": f"http-{i}", "html": "<p>Bonjour</p>", "text": "Bonjour"}


async def main_async(
    args: argparse.Namespace, redis_url: str, folder: Path
) -> dict[str, tuple[float, float]]:
    results: dict[str, tuple[float, float]] = {}
    cert, key = certificate(folder)
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    async with database(args.database_url, folder) as db:
        with slow_sink(folder, cert, key, args.delay) as sink:
            env = envoi_env(redis_url=redis_url, prefix=prefix, database_url=db, sink=sink, cert=cert)
            cases = {
                SYNCHRONOUS: {"QUEUE_ENABLED": "false", "SMTP_POOL_SIZE": str(args.concurrency)},
                QUEUED: {"QUEUE_ENABLED": "true"},
            }
            for name, extra in cases.items():
                n = args.n_sync if name == SYNCHRONOUS else args.n
                with envoi_api({**env, **extra}, folder / f"api-{len(results)}.log") as base_url:
                    await load(base_url, min(n, 50), args.concurrency, email)  # warm-up: connections, caches
                    _, latencies, seconds = await load(base_url, n, args.concurrency, email)
                results[name] = (n / seconds, percentile(latencies, 0.99))
    if args.redis_url:
        await obliterate(redis_url, prefix)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000, help="queued requests")
    parser.add_argument("--n-sync", type=int, default=500, help="synchronous requests")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--delay", type=float, default=0.05, help="seconds before each SMTP reply")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL"))
    add_redis_argument(parser)
    args = parser.parse_args()
    with bench_environment(args.redis_url) as (redis_url, _sqlite), tempfile.TemporaryDirectory() as tmp:
        results = asyncio.run(main_async(args, redis_url, Path(tmp)))
    print(
        f"POST /v1/jobs/SEND_EMAIL, one API process, {args.concurrency} clients in a closed loop, "
        f"SMTP replies after {args.delay * 1000:g} ms, database {'PostgreSQL' if args.database_url else 'SQLite'}"
    )
    base = results[SYNCHRONOUS][0]
    print(f"{'endpoint':40} {'requests/s':>11} {'p99 (ms)':>9} {'x baseline':>10}")
    for name, (rate, p99) in results.items():
        print(f"{name:40} {rate:11.0f} {p99 * 1000:9.1f} {rate / base:10.2f}")


if __name__ == "__main__":
    main()
