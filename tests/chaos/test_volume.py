"""(7) 10,000 emails through a real `envoi api` process, sent by two `envoi worker` processes: 10,000
distinct messages arrive, each once. Duration and latencies are printed, not asserted (a shared 2-core
machine measures its neighbours as much as envoi)."""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

import httpx
import pytest

from envoi.embedded_redis import free_port
from tests.chaos.conftest import Stage
from tests.chaos.support import dead_letter_count, drained, percentile, received, recipients, report
from tests.helpers import eventually

#: 10,000 (CHAOS_VOLUME_MESSAGES to try fewer while working on it).
MESSAGES = int(os.environ.get("CHAOS_VOLUME_MESSAGES", "10000"))
#: Requests in flight at once from the test's client.
CLIENTS = 32
API_KEY = "chaos-api-key-0123456789"


@pytest.mark.timeout(420)
async def test_ten_thousand_emails_through_the_api_with_two_workers(stage: Stage) -> None:
    envoi = stage.envoi()
    port = free_port()
    stage.api(port, API_KEY)
    for _ in range(2):
        # Nothing crashes here: production's lock, not the suite's 2 s one, which a starved event loop
        # (this machine is shared) can miss renewing.
        stage.worker(worker_concurrency=16, worker_lock_duration_ms=30000, worker_stalled_interval_ms=30000)
    to = recipients("volume", MESSAGES)
    posted_at: dict[str, float] = {}
    answered_in: list[float] = []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as probe:
        await eventually(lambda: _healthy(probe), timeout=60, interval=0.2, message="the API up")
    started = time.monotonic()
    pending = iter(to)

    async def post_all() -> None:
        client = Http(port, {"Authorization": f"Bearer {API_KEY}"})
        try:
            for rcpt in pending:  # the CLIENTS loops share one iterator: each address is posted once
                posted_at[rcpt] = time.time()
                sent = time.monotonic()
                body = {"to": rcpt, "subject": "Rappel", "html": "<p>Bonjour</p>"}
                status = await client.post("/v1/jobs/SEND_EMAIL", body, idempotency_key=rcpt)
                assert status in (200, 202), status
                answered_in.append(time.monotonic() - sent)
        finally:
            await client.close()

    await asyncio.gather(*(post_all() for _ in range(CLIENTS)))
    accepted = time.monotonic() - started
    await eventually(
        lambda: len(stage.smtp.messages) >= MESSAGES, timeout=300, interval=0.5, message="every message"
    )
    delivered = time.monotonic() - started
    await eventually(lambda: drained(envoi), timeout=60, interval=0.5, message="the queue drained")

    counts = received(stage.smtp)
    latencies = [m.accepted_at - posted_at[m.rcpt_tos[0]] for m in stage.smtp.messages]
    report(
        "10,000 emails through the API, two workers",
        messages=MESSAGES,
        accepted_in_s=accepted,
        delivered_in_s=delivered,
        per_second=MESSAGES / delivered,
        api_p50_ms=percentile(answered_in, 0.5) * 1000,
        api_p99_ms=percentile(answered_in, 0.99) * 1000,
        end_to_end_p50_s=percentile(latencies, 0.5),
        end_to_end_p99_s=percentile(latencies, 0.99),
    )
    assert len(counts) == MESSAGES and set(counts) == set(to)
    assert all(n == 1 for n in counts.values())
    assert await dead_letter_count(envoi) == 0


class Http:
    """A bare HTTP/1.1 keep-alive client, for JSON POSTs to the API: at 10,000 requests, httpx costs this
    process (which also runs the SMTP sink) more CPU than the API spends answering. A request cut by a
    connection error is sent again on a new connection under the same Idempotency-Key, as a client
    should: the API answers the retry with the first job instead of making a second one."""

    def __init__(self, port: int, headers: dict[str, str]) -> None:
        self.port = port
        self.headers = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str, body: dict[str, Any], *, idempotency_key: str) -> int:
        payload = json.dumps(body).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nIdempotency-Key: {idempotency_key}\r\n{self.headers}\r\n"
        )
        for attempt in range(3):
            try:
                return await self._exchange(head.encode() + payload)
            except (ConnectionError, asyncio.IncompleteReadError):
                await self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _exchange(self, request: bytes) -> int:
        if self.stream is None:
            self.stream = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self.stream
        writer.write(request)
        await writer.drain()
        status_line = await reader.readline()
        if not status_line:
            raise ConnectionError("closed by the server")
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        await reader.readexactly(length)
        return int(status_line.split()[1])

    async def close(self) -> None:
        if self.stream is not None:
            self.stream[1].close()
            self.stream = None


async def _healthy(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/healthz")).status_code == 200
    except httpx.HTTPError:
        return False
