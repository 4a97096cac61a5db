"""Chaos (6): the same Idempotency-Key 50 times at once, with Redis up and with Redis down.

50 concurrent requests (asyncio.gather over the real app) carry one key. Whatever Redis does, exactly one
is accepted (202) and enqueues a job; the 49 others answer 200 with its job id. At most one message
reaches the SMTP sink, and no request leaves a false dead letter (before, with Redis down, each request
ran its own job inline: 50 job ids, and 49 dead letters from the ledger's lease).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from sqlalchemy import func, select

from envoi.config import Settings
from envoi.db.models import DeliveryStatus, FailedJob
from envoi.embedded_redis import free_port
from envoi.runtime import Envoi
from envoi.worker import Worker
from tests.api.conftest import API_KEY
from tests.chaos.scheduling_support import api_client
from tests.fixtures.smtp import SmtpSink
from tests.helpers import eventually

REQUESTS = 50
EMAIL = {"to": "jane@example.com", "subject": "Your invoice", "html": "<p>Invoice 42</p>"}
KEY = "invoice-42-sent"


@pytest.mark.parametrize("redis", ["up", "down"])
async def test_one_key_fifty_times_at_once_makes_one_job_and_one_message(
    redis: str,
    make_delivery_settings: Callable[..., Settings],
    make_envoi: Callable[..., Envoi],
    start_worker: Callable[..., Awaitable[Worker]],
    smtp_sink: SmtpSink,
) -> None:
    overrides = {} if redis == "up" else {"redis_url": f"redis://127.0.0.1:{free_port()}/0"}
    envoi = make_envoi(make_delivery_settings(envoi_api_key=API_KEY, **overrides))
    if redis == "up":
        await start_worker(envoi)

    async with api_client(envoi) as api:
        responses = await asyncio.gather(
            *(
                api.post("/v1/jobs/SEND_EMAIL", json=EMAIL, headers={"Idempotency-Key": KEY})
                for _ in range(REQUESTS)
            )
        )

    assert Counter(r.status_code for r in responses) == {202: 1, 200: REQUESTS - 1}
    assert len({r.json()["jobId"] for r in responses}) == 1, "every answer names the one job"
    [accepted] = [r for r in responses if r.status_code == 202]
    assert accepted.json()["mode"] == ("queued" if redis == "up" else "sync")

    async def sent() -> bool:
        row = await envoi.ledger.get(KEY)
        return row is not None and row.status == DeliveryStatus.SENT

    await eventually(sent, timeout=15, message="the message sent once")
    assert len(smtp_sink.messages) == 1
    async with envoi.db.session() as session:
        dead_letters = await session.scalar(select(func.count()).select_from(FailedJob))
    assert dead_letters == 0, "no request left a false dead letter"
