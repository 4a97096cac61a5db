"""Wire compatibility with Node BullMQ, both ways, through a real Redis.

The `bullmq` npm package is installed into tests/interop/node by the first test that needs it (from
package-lock.json, `node_bullmq` in conftest.py). Skipped, with the reason shown, where `node`/`npm` are
absent.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from envoi.config import Settings
from envoi.queue import NOTIFICATIONS_QUEUE, HandlerRegistry
from envoi.runtime import Envoi
from tests.fixtures.smtp import SmtpSink
from tests.helpers import eventually
from tests.interop.support import node


async def test_send_email_added_by_node_is_delivered_by_an_envoi_worker(
    node_bullmq: Path,
    delivery_settings: Settings,
    make_envoi: Any,
    start_worker: Any,
    smtp_sink: SmtpSink,
) -> None:
    envoi: Envoi = make_envoi(delivery_settings)
    await start_worker(envoi)
    # The original NestJS system's SEND_EMAIL data, byte for byte.
    data = {
        "to": "lead@example.com",
        "subject": "Votre rendez-vous est confirmé",
        "html": "<p>Bonjour Jeanne</p>",
        "text": "Bonjour Jeanne",
        "metadata": {"userId": "u_1", "organizationId": "org_1", "templateKey": "appointment-confirmation"},
    }
    job_id = await node(
        node_bullmq, "produce.js", delivery_settings.redis_url or "", delivery_settings.redis_prefix,
        "SEND_EMAIL", json.dumps(data),
    )  # fmt: skip
    assert job_id
    [received] = await eventually(lambda: smtp_sink.messages, timeout=20, message="the email")
    assert received.rcpt_tos == ["lead@example.com"]
    assert received.message["Subject"] == "Votre rendez-vous est confirmé"
    assert received.text is not None and "Bonjour Jeanne" in received.text


async def test_job_added_by_envoi_is_processed_by_a_node_worker(
    node_bullmq: Path, settings: Settings, make_envoi: Any
) -> None:
    envoi: Envoi = make_envoi(settings, registry=HandlerRegistry())
    data = {"userId": "u_1", "title": "Bienvenue", "message": "Bonjour", "metadata": {"k": "v"}}
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "CREATE_INAPP_NOTIFICATION", data)
    seen = json.loads(await node(node_bullmq, "work.js", settings.redis_url or "", settings.redis_prefix))
    assert seen["id"] == result.job_id
    assert seen["name"] == "CREATE_INAPP_NOTIFICATION"
    assert seen["data"] == data
    assert seen["opts"]["attempts"] == 5
    assert seen["opts"]["backoff"] == {"type": "exponential", "delay": settings.job_backoff_delay_ms}
    assert seen["opts"]["removeOnComplete"] is True


async def test_jobs_added_in_bulk_and_coalesced_are_processed_by_a_node_worker_in_order(
    node_bullmq: Path, settings: Settings, make_envoi: Any
) -> None:
    envoi: Envoi = make_envoi(settings, registry=HandlerRegistry())
    items = [{"userId": f"u_{n}", "title": "Bienvenue", "message": "Bonjour"} for n in range(2)]
    bulk = await envoi.queue.enqueue_many(NOTIFICATIONS_QUEUE, "CREATE_INAPP_NOTIFICATION", items)
    # Two concurrent single enqueues: one bulk add (envoi.queue.coalesce).
    coalesced = await asyncio.gather(
        *(
            envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "SEND_SMS", {"to": "+33612345678", "message": m})
            for m in "ab"
        )
    )
    expected = [(r.job_id, "CREATE_INAPP_NOTIFICATION", item) for r, item in zip(bulk, items, strict=True)]
    expected += [
        (r.job_id, "SEND_SMS", {"to": "+33612345678", "message": m})
        for r, m in zip(coalesced, "ab", strict=True)
    ]
    out = await node(node_bullmq, "work_many.js", settings.redis_url or "", settings.redis_prefix, "4")
    seen = [json.loads(line) for line in out.splitlines()]
    assert [(job["id"], job["name"], job["data"]) for job in seen] == expected
    for job in seen:
        assert job["opts"]["attempts"] == 5
        assert job["opts"]["backoff"] == {"type": "exponential", "delay": settings.job_backoff_delay_ms}
        assert job["opts"]["removeOnComplete"] is True
