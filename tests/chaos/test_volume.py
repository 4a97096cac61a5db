"""(7) 10,000 emails through a real `envoi api` process, sent by two `envoi worker` processes: 10,000
distinct messages arrive, each once. Duration and latencies are printed, not asserted (a shared 2-core
machine measures its neighbours as much as envoi)."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from envoi.embedded_redis import free_port
from tests.chaos.conftest import Stage
from tests.chaos.support import dead_letter_count, drained, percentile, received, recipients, report
from tests.helpers import eventually

MESSAGES = 10_000
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
    base = f"http://127.0.0.1:{port}"
    to = recipients("volume", MESSAGES)
    posted_at: dict[str, float] = {}
    answered_in: list[float] = []
    limits = httpx.Limits(max_connections=CLIENTS, max_keepalive_connections=CLIENTS)
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"Bearer {API_KEY}"}, limits=limits, timeout=30
    ) as client:
        await eventually(lambda: _healthy(client), timeout=60, interval=0.2, message="the API up")
        started = time.monotonic()
        pending = iter(to)

        async def post_all() -> None:
            for rcpt in pending:  # the CLIENTS loops share one iterator: each address is posted once
                posted_at[rcpt] = time.time()
                sent = time.monotonic()
                await _post(client, rcpt)
                answered_in.append(time.monotonic() - sent)

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


async def _post(client: httpx.AsyncClient, rcpt: str) -> httpx.Response:
    """POST one email; a connection error is retried under the same Idempotency-Key, as a client should:
    the retry answers 200 with the first job instead of making a second one."""
    body = {"to": rcpt, "subject": "Rappel", "html": "<p>Bonjour</p>"}
    for attempt in range(3):
        try:
            response = await client.post("/v1/jobs/SEND_EMAIL", json=body, headers={"Idempotency-Key": rcpt})
        except httpx.TransportError:
            if attempt == 2:
                raise
            continue
        assert response.status_code in (200, 202), response.text
        return response
    raise AssertionError("unreachable")


async def _healthy(client: httpx.AsyncClient) -> bool:
    try:
        return (await client.get("/healthz")).status_code == 200
    except httpx.HTTPError:
        return False
