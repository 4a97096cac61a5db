"""Leases follow the job: derived from the worker's lock, renewed while the send runs; a run that finds a
live lease is postponed to its end without spending an attempt (queued), or waits a bounded time
(inline). A carrier's "undelivered" is final. Keys tell apart two jobs bullmq gave the same id."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest

from envoi.config import Settings
from envoi.db.models import DeliveryStatus, MessageDelivery
from envoi.db.types import utcnow
from envoi.deliveries import DeliveryLedger
from envoi.errors import DeferredError
from envoi.queue.names import NOTIFICATIONS_QUEUE, JobName
from envoi.runtime import Envoi
from tests.channels.support import (
    EMAIL_TO,
    PHONE_TO,
    Recorder,
    context,
    delivery,
    email_data,
    ledger,
    text_data,
)
from tests.fixtures.smtp import SmtpSink
from tests.fixtures.twilio import TwilioServer
from tests.helpers import eventually, job_state

EMAIL = {"channel": "email", "provider": "smtp", "recipient": EMAIL_TO}


async def held_elsewhere(envoi: Envoi, key: str, *, for_s: float) -> MessageDelivery:
    """A row SENDING under another run's live lease, ending in `for_s` seconds."""
    row = MessageDelivery(
        idempotency_key=key,
        status=DeliveryStatus.SENDING,
        lease_expires_at=utcnow() + timedelta(seconds=for_s),
        **EMAIL,
    )
    async with envoi.db.session() as session:
        session.add(row)
    return row


async def test_the_lease_is_a_quarter_longer_than_the_worker_lock(
    make_settings: Any, make_envoi: Any
) -> None:
    settings: Settings = make_settings(worker_lock_duration_ms=8000)
    assert settings.delivery_lease_s == 10
    envoi: Envoi = make_envoi(settings)
    before = utcnow()
    claim = await ledger(envoi).claim(key="k", **EMAIL)
    assert claim.lease_expires_at is not None
    assert timedelta(seconds=9.9) <= claim.lease_expires_at - before <= timedelta(seconds=11)


async def test_the_lease_is_renewed_while_a_slow_send_runs(
    make_delivery_settings: Any, make_envoi: Any, smtp_sink: SmtpSink
) -> None:
    """A send three times longer than the lease: nobody else may take the message meanwhile."""
    envoi: Envoi = make_envoi(make_delivery_settings(worker_lock_duration_ms=800))  # a 1 s lease
    smtp_sink.slow_down(3.0, stage="rcpt")
    data = email_data(metadata={"idempotencyKey": "slow-1"})
    send = asyncio.create_task(envoi.registry.run(context(JobName.SEND_EMAIL, data)))
    first = await eventually(lambda: delivery(envoi, "slow-1"), message="the row claimed")
    first_end = first.lease_expires_at
    assert first_end is not None

    async def renewed_past_the_first_lease() -> bool:
        row = await delivery(envoi, "slow-1")
        return bool(row and row.lease_expires_at and utcnow() > first_end and row.lease_expires_at > utcnow())

    await eventually(renewed_past_the_first_lease, timeout=5, message="a renewal outliving the first lease")
    with pytest.raises(DeferredError):
        await ledger(envoi).claim(key="slow-1", **EMAIL)
    result = await send
    assert result["status"] == "sent"
    row = await delivery(envoi, "slow-1")
    assert row is not None and (row.status, row.attempts) == ("SENT", 1)
    assert len(smtp_sink.messages) == 1


async def test_a_live_lease_postpones_the_job_without_spending_an_attempt(
    delivery_settings: Settings, make_envoi: Any, start_worker: Any, smtp_sink: SmtpSink
) -> None:
    """One attempt only: had waiting on the lease cost an attempt, the job would be a dead letter."""
    envoi: Envoi = make_envoi(delivery_settings)
    recorder = Recorder()
    envoi.recorders.append(recorder)
    await held_elsewhere(envoi, "held-1", for_s=1.5)
    await start_worker(envoi)
    data = email_data(metadata={"idempotencyKey": "held-1"})
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_EMAIL, data, attempts=1)
    assert await eventually(
        lambda: _is(envoi, result.job_id, "delayed"), timeout=5, message="the job postponed"
    )
    assert smtp_sink.messages == []
    await eventually(lambda: smtp_sink.messages, timeout=10, message="sent once the lease ended")
    row = await eventually(lambda: _sent(envoi, "held-1"), message="SENT")
    assert row.attempts == 1
    assert recorder.failures == []
    assert len(smtp_sink.messages) == 1


async def _is(envoi: Envoi, job_id: str, state: str) -> bool:
    return await job_state(envoi, NOTIFICATIONS_QUEUE, job_id) == state


async def _sent(envoi: Envoi, key: str) -> Any:
    row = await delivery(envoi, key)
    return row if row is not None and row.status == "SENT" else None


async def test_inline_waits_out_a_short_lease_then_sends(
    make_delivery_settings: Any, make_envoi: Any, smtp_sink: SmtpSink
) -> None:
    envoi: Envoi = make_envoi(make_delivery_settings(queue_enabled=False))
    # Before the row is written: its lease is counted from then, and writing it may take a while.
    started = time.monotonic()
    await held_elsewhere(envoi, "inline-1", for_s=1.0)
    data = email_data(metadata={"idempotencyKey": "inline-1"})
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_EMAIL, data)
    assert (result.mode, result.succeeded) == ("sync", True)
    assert 0.9 <= time.monotonic() - started < 5
    assert len(smtp_sink.messages) == 1


async def test_inline_gives_up_at_once_on_a_long_lease(
    make_delivery_settings: Any, make_envoi: Any, smtp_sink: SmtpSink
) -> None:
    envoi: Envoi = make_envoi(make_delivery_settings(queue_enabled=False))
    recorder = Recorder()
    envoi.recorders.append(recorder)
    await held_elsewhere(envoi, "inline-2", for_s=60)
    started = time.monotonic()
    data = email_data(metadata={"idempotencyKey": "inline-2"})
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_EMAIL, data)
    assert (result.mode, result.succeeded) == ("sync", False)
    assert time.monotonic() - started < 2
    [failure] = recorder.failures
    assert "being sent by another run" in failure.error_message
    assert smtp_sink.messages == []


@pytest.mark.parametrize("verdict", ["undelivered", "failed"])
async def test_undelivered_is_never_sent_again(
    delivery_settings: Settings, make_envoi: Any, twilio_server: TwilioServer, verdict: str
) -> None:
    envoi: Envoi = make_envoi(delivery_settings)
    job = context(JobName.SEND_SMS, text_data(metadata={"idempotencyKey": "sms-1"}))
    first = await envoi.registry.run(job)
    assert first["status"] == "sent"
    [sent] = twilio_server.messages
    changed = await DeliveryLedger(envoi.db, lease_s=60).apply_provider_status(
        provider_message_id=sent["sid"], status=verdict, error_code="30003"
    )
    assert changed == 1
    # The job runs again (a retry, a stall, a DLQ retry of the same job): nothing leaves.
    again = await envoi.registry.run(job)
    assert (again["status"], again["deliveryStatus"]) == ("skipped", "UNDELIVERED")
    assert len(twilio_server.messages) == 1
    row = await delivery(envoi, "sms-1")
    assert row is not None and (row.status, row.error_code, row.recipient) == (
        "UNDELIVERED",
        "30003",
        PHONE_TO,
    )


async def test_two_jobs_bullmq_numbered_alike_both_send(
    delivery_settings: Settings, make_envoi: Any, smtp_sink: SmtpSink
) -> None:
    """Job 1 before Redis lost its data and job 1 after: same id, not the same message."""
    envoi: Envoi = make_envoi(delivery_settings)
    before = await envoi.registry.run(
        context(JobName.SEND_EMAIL, email_data(), job_id="1", created_at_ms=1000)
    )
    after = await envoi.registry.run(
        context(JobName.SEND_EMAIL, email_data(), job_id="1", created_at_ms=2000)
    )
    assert (before["status"], after["status"]) == ("sent", "sent")
    assert before["deliveryId"] != after["deliveryId"]
    assert len(smtp_sink.messages) == 2
    # The same job retried (same id, same creation time) still sends once.
    retried = await envoi.registry.run(
        context(JobName.SEND_EMAIL, email_data(), job_id="1", created_at_ms=2000)
    )
    assert retried["status"] == "skipped"
    assert len(smtp_sink.messages) == 2
