"""What the flows put on the queue (no worker, no handler): job ids, keys, channels, refusals."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from envoi.config import Settings
from envoi.notifications.jobs import SendEmailJob, parse_job
from envoi.notifications.service import NotificationsService
from envoi.queue import NOTIFICATIONS_QUEUE, HandlerRegistry
from envoi.runtime import Envoi
from tests.helpers import bull_queue
from tests.notifications.factories import LEAD_EMAIL, TWILIO, make_appointment


@pytest.fixture
def service(make_settings: Callable[..., Settings], make_envoi: Callable[..., Envoi]) -> NotificationsService:
    settings = make_settings(sms_enabled=True, whatsapp_enabled=True, **TWILIO)
    return (make_envoi(settings, registry=HandlerRegistry())).notifications


async def job_ids(service: NotificationsService, state: str) -> list[str]:
    jobs = await bull_queue(service.queue, NOTIFICATIONS_QUEUE).getJobs([state])
    return sorted(str(job.id) for job in jobs)


async def test_a_repeated_call_adds_no_second_job(service: NotificationsService) -> None:
    first = await service.send_verification_email(email=LEAD_EMAIL, first_name="Léa", verification_token="1")
    again = await service.send_verification_email(
        email="LEA@example.com", first_name="Léa", verification_token="1"
    )
    other = await service.send_verification_email(email=LEAD_EMAIL, first_name="Léa", verification_token="2")
    assert first[0].job_id == again[0].job_id != other[0].job_id
    assert await job_ids(service, "waiting") == sorted([first[0].job_id, other[0].job_id])


async def test_confirmation_jobs_and_keys(service: NotificationsService) -> None:
    appointment = make_appointment(starts_in=timedelta(days=1))
    stamp = appointment.scheduled_at.strftime("%Y%m%dT%H%M%SZ")
    results = await service.send_appointment_confirmation(appointment=appointment)
    await service.send_appointment_confirmation(appointment=appointment)  # a retried request
    assert [r.job_id for r in results[:3]] == [
        f"appointment-confirmation-apt-1-email-{stamp}",
        f"appointment-confirmation-apt-1-sms-{stamp}",
        f"appointment-confirmation-apt-1-whatsapp-{stamp}",
    ]
    assert results[3].job_id.startswith("followup-apt-1-whatsapp-")
    assert all(":" not in r.job_id for r in results), "Node BullMQ refuses ':' in custom ids"
    assert await job_ids(service, "waiting") == sorted(r.job_id for r in results[:3])
    # The retried request replaced the follow-up: one waits, the first one's row is superseded.
    [followup] = await job_ids(service, "delayed")
    assert followup.startswith("followup-apt-1-whatsapp-") and followup != results[3].job_id
    job = await bull_queue(service.queue, NOTIFICATIONS_QUEUE).getJob(results[0].job_id)
    email = parse_job(job.name, job.data)
    assert isinstance(email, SendEmailJob) and email.attachments is not None
    # The ledger's key keeps its colons: it is not a job id.
    assert email.metadata is not None
    assert email.metadata.idempotency_key == f"appointment-confirmation:apt-1:email:{stamp}"


async def test_confirmation_without_a_phone_is_email_only(service: NotificationsService) -> None:
    appointment = make_appointment()
    appointment.lead.phone = None
    results = await service.send_appointment_confirmation(appointment=appointment)
    assert [r.job_name for r in results] == ["SEND_EMAIL"]


async def test_refusals_happen_before_anything_is_queued(service: NotificationsService) -> None:
    with pytest.raises(ValueError, match="'de'"):
        await service.send_verification_email(
            email=LEAD_EMAIL, first_name="L", verification_token="1", locale="de"
        )
    with pytest.raises(ValueError, match="resume_url"):
        await service.schedule_abandon_recovery(email=LEAD_EMAIL, resume_url="javascript:alert(1)")
    assert await job_ids(service, "waiting") == []


async def test_reminders_without_a_queue_are_dead_lettered_not_sent(
    make_settings: Callable[..., Settings], make_envoi: Callable[..., Envoi]
) -> None:
    service = make_envoi(make_settings(queue_enabled=False), registry=HandlerRegistry()).notifications
    replacement = await service.schedule_appointment_reminders(appointment=make_appointment())
    assert [(s.slot.kind, s.result.mode, s.result.succeeded) for s in replacement.scheduled] == [
        ("reminder-day", "sync", False),
        ("reminder-hour", "sync", False),
    ]
    cancelled = await service.cancel_appointment_reminders(appointment_id="apt-1")
    assert sorted(cancelled.cancelled) == sorted(s.slot.job_id for s in replacement.scheduled)
    assert cancelled.removed is False, "no Redis to remove them from: the record is what holds"
