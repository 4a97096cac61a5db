"""Shared rate limit: four workers sending SMS through a Twilio stand-in under RATE_LIMITS=twilio=50/s.

Each worker is its own `Envoi` (own Redis connections, own bullmq Worker, concurrency 20) in one process;
they share the limit only through Redis, as separate processes would. The stand-in (a real HTTP server
on 127.0.0.1, in a thread) stamps each request on arrival. Printed: the delivered rate over the run, and
the most requests in any one-second window (sliding, starting at each request), which must not exceed
the limit.

    PYTHONPATH=src python bench/throttle.py            # 500 SMS, about 10 s
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import create_engine, text

from common import add_redis_argument, bench_environment
from envoi.channels import OutgoingText
from envoi.config import Settings
from envoi.db.migrate import upgrade
from envoi.queue import NOTIFICATIONS_QUEUE
from envoi.queue.names import JobName
from envoi.runtime import Envoi
from envoi.worker import Worker

SID = "AC" + "0" * 30 + "be"


class StandIn:
    def __init__(self, n: int, loop: asyncio.AbstractEventLoop) -> None:
        self.stamps: list[float] = []
        self.all_in = asyncio.Event()
        self.lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                with stand_in.lock:
                    stand_in.stamps.append(time.monotonic())
                    if len(stand_in.stamps) == n:
                        loop.call_soon_threadsafe(stand_in.all_in.set)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = json.dumps({"sid": "SM" + uuid.uuid4().hex}).encode()
                self.send_response(201)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


async def send_directly(envois: list[Envoi], *, n: int, concurrency: int) -> None:
    """Each worker's SMS channel (ThrottledChannel around Twilio's) driven by `concurrency` tasks:
    the provider policy alone, without bullmq and the ledger."""
    numbers = iter(range(n))

    async def sender(envoi: Envoi) -> None:
        assert envoi.channels is not None and envoi.channels.sms is not None
        for i in numbers:
            await envoi.channels.sms.send(
                OutgoingText(to=f"+336{i:08d}", body="bench", idempotency_key=str(i))
            )

    await asyncio.gather(*(sender(envoi) for envoi in envois for _ in range(concurrency)))


def max_in_window(stamps: list[float], window: float) -> int:
    return max(sum(1 for t in stamps if start <= t < start + window) for start in stamps)


async def run(
    url: str,
    db: str,
    schema: str | None,
    *,
    n: int,
    rate: float,
    workers: int,
    concurrency: int,
    channel_only: bool,
) -> tuple[float, int, int]:
    stand_in = StandIn(n, asyncio.get_running_loop())
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        redis_url=url,
        redis_prefix=f"bench-{uuid.uuid4().hex[:8]}",
        database_url=db,
        database_schema=schema,
        email_provider="console",
        sms_enabled=True,
        whatsapp_enabled=False,
        twilio_api_base_url=stand_in.url,
        twilio_account_sid=SID,
        twilio_auth_token="bench",
        twilio_phone_number="+15005550006",
        rate_limits=f"twilio={rate:g}/s",
        rate_limit_max_wait_s=60,
        worker_drain_delay_s=1,
        worker_concurrency=concurrency,
    )
    envois = [Envoi(settings) for _ in range(workers)]
    if channel_only:
        await send_directly(envois, n=n, concurrency=concurrency)
    for i in range(0 if channel_only else n):
        data = {"to": f"+336{i:08d}", "message": "bench"}
        await envois[0].queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_SMS, data)
    running = [] if channel_only else [Worker(envoi) for envoi in envois]
    for worker in running:
        await worker.start()
    with contextlib.suppress(TimeoutError):  # reported below: fewer than n arrived
        await asyncio.wait_for(stand_in.all_in.wait(), timeout=n / rate * 2 + 10)
    for worker in running:
        await worker.close(timeout=5)
    for envoi in envois:
        await envoi.close()
    stand_in.httpd.shutdown()
    stamps = sorted(stand_in.stamps)
    delivered = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    return delivered, max_in_window(stamps, 1.0), len(stamps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=20, help="jobs in flight per worker")
    parser.add_argument(
        "--channel-only",
        action="store_true",
        help="drive each worker's SMS channel directly (the rate limiter alone, no bullmq nor ledger)",
    )
    parser.add_argument(
        "--database-url",
        help="PostgreSQL for the ledger, in a fresh schema (default: SQLite, whose single writer caps the "
        "ledger near 35 jobs/s on a 2-core machine, below the limit under test)",
    )
    add_redis_argument(parser)
    args = parser.parse_args()
    schema = f"bench_{uuid.uuid4().hex[:8]}" if args.database_url else None
    with bench_environment(args.redis_url) as (url, sqlite):
        db = args.database_url or sqlite
        upgrade(db, schema=schema)
        try:
            delivered, worst, count = asyncio.run(
                run(
                    url,
                    db,
                    schema,
                    n=args.n,
                    rate=args.rate,
                    workers=args.workers,
                    concurrency=args.concurrency,
                    channel_only=args.channel_only,
                )
            )
        finally:
            if schema is not None:
                with create_engine(db).begin() as connection:
                    connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    mode = "channel only" if args.channel_only else "jobs through bullmq and the ledger"
    print(
        f"{mode}: {count}/{args.n} SMS, limit {args.rate:g}/s, {args.workers} workers x {args.concurrency}, Redis {url}"
    )
    print(f"delivered rate: {delivered:.2f}/s ({(delivered / args.rate - 1) * 100:+.1f} % of the limit)")
    print(f"most requests in any one-second window: {worst} (limit {args.rate:g})")


if __name__ == "__main__":
    main()
