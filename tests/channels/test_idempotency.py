"""Exactly once, seen from outside: one message per key however many times the job runs, queued or not."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from envoi.config import Settings
from envoi.db.models import Notification
from envoi.queue.names import NOTIFICATIONS_QUEUE, JobName
from envoi.runtime import Envoi
from tests.channels.support import context, delivery, email_data, text_data
from tests.fixtures.smtp import SmtpSink
from tests.fixtures.twilio import TwilioServer
from tests.helpers import eventually, job_state


async def test_same_key_enqueued_twice_sends_one_email(
    delivery_settings: Settings, make_envoi: Any, start_worker: Any, smtp_sink: SmtpSink
) -> None:
    envoi: Envoi = make_envoi(delivery_settings)
    await start_worker(envoi)
    data = email_data(metadata={"idempotencyKey": "welcome-u1"})
    first = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_EMAIL, data)
    await eventually(lambda: smtp_sink.messages, message="first email")
    second = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_EMAIL, data)
    # removeOnComplete: a job gone from Redis without a failure has completed.
    for job_id in (first.job_id, second.job_id):
        await eventually(lambda j=job_id: _gone(envoi, j), message=f"job {job_id} completed")
    assert len(smtp_sink.messages) == 1
    row = await delivery(envoi, "welcome-u1")
    assert row is not None and (row.status, row.attempts) == ("SENT", 1)


async def test_concurrent_duplicates_send_one_sms(
    delivery_settings: Settings, make_envoi: Any, start_worker: Any, twilio_server: TwilioServer
) -> None:
    envoi: Envoi = make_envoi(delivery_settings)
    await start_worker(envoi, concurrency=5)
    data = text_data(metadata={"templateKey": "reminder_1h", "appointmentId": "a1"})
    results = [await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.SEND_SMS, data) for _ in range(5)]
    await eventually(lambda: twilio_server.messages, message="one SMS")
    # The losers either found the row SENT or met the live lease and come back after their backoff.
    for result in results:
        await eventually(lambda j=result.job_id: _gone(envoi, j), timeout=20, message="duplicates completed")
    assert len(twilio_server.messages) == 1


async def _gone(envoi: Envoi, job_id: str) -> bool:
    return await job_state(envoi, NOTIFICATIONS_QUEUE, job_id) == "unknown"


async def test_a_job_run_again_after_its_send_sends_nothing(
    delivery_settings: Settings, make_envoi: Any, smtp_sink: SmtpSink, twilio_server: TwilioServer
) -> None:
    """A worker sent, then died before acknowledging: bullmq runs the same job again."""
    envoi: Envoi = make_envoi(delivery_settings)
    email = context(JobName.SEND_EMAIL, email_data(), job_id="17")
    sms = context(JobName.SEND_SMS, text_data(), job_id="18")
    first = await envoi.registry.run(email)
    again = await envoi.registry.run(context(JobName.SEND_EMAIL, email_data(), job_id="17", attempt=2))
    assert first["status"] == "sent"
    assert again == {
        "status": "skipped",
        "deliveryId": first["deliveryId"],
        "deliveryStatus": "SENT",
        "providerMessageId": first["providerMessageId"],
    }
    assert len(smtp_sink.messages) == 1
    sms_first = await envoi.registry.run(sms)
    sms_again = await envoi.registry.run(sms)
    assert (sms_first["status"], sms_again["status"]) == ("sent", "skipped")
    assert len(twilio_server.messages) == 1


async def test_inapp_notification_is_created_once(delivery_settings: Settings, make_envoi: Any) -> None:
    envoi: Envoi = make_envoi(delivery_settings)
    data = {
        "userId": "u1",
        "title": "Nouveau RDV",
        "message": "Jeanne a réservé demain 10h",
        "metadata": {"templateKey": "appointment_booked", "appointmentId": "a1", "extra": {"x": 1}},
    }
    first = await envoi.registry.run(context(JobName.CREATE_INAPP_NOTIFICATION, data, job_id="1"))
    # Another job (another id) for the same flow and entity: still one row.
    again = await envoi.registry.run(context(JobName.CREATE_INAPP_NOTIFICATION, data, job_id="2"))
    assert (first["status"], again["status"]) == ("created", "skipped")
    assert first["notificationId"] == again["notificationId"]
    async with envoi.db.session() as session:
        rows = (await session.scalars(select(Notification))).all()
    [row] = rows
    assert (row.user_id, row.title, row.status, row.idempotency_key) == (
        "u1",
        "Nouveau RDV",
        "SENT",
        "appointment_booked:a1:inapp:u1",
    )
    assert row.meta == {"templateKey": "appointment_booked", "appointmentId": "a1", "extra": {"x": 1}}
    assert row.sent_at is not None


async def test_inapp_through_the_worker_twice(
    delivery_settings: Settings, make_envoi: Any, start_worker: Any
) -> None:
    envoi: Envoi = make_envoi(delivery_settings)
    await start_worker(envoi)
    data = {"userId": "u2", "title": "T", "message": "M", "metadata": {"idempotencyKey": "inapp-1"}}
    jobs = [
        await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, JobName.CREATE_INAPP_NOTIFICATION, data)
        for _ in range(2)
    ]
    for job in jobs:
        await eventually(lambda j=job.job_id: _gone(envoi, j), message="in-app job completed")
    async with envoi.db.session() as session:
        count = await session.scalar(select(func.count()).select_from(Notification))
    assert count == 1
