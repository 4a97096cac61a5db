"""Reminders as delayed jobs in a real Redis: what is scheduled, when, and what moving or cancelling leaves.

No handler is registered: the jobs stay in bullmq's delayed set, where the test reads them back.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from envoi.config import Settings
from envoi.notifications.jobs import SendEmailJob, SendSmsJob, parse_job
from envoi.notifications.models import Appointment
from envoi.notifications.service import NotificationsService
from envoi.queue import NOTIFICATIONS_QUEUE, HandlerRegistry
from envoi.runtime import Envoi
from tests.helpers import bull_queue
from tests.notifications.factories import LEAD_EMAIL, LEAD_PHONE, TWILIO, make_appointment

#: bullmq stamps the job when it is added, a few milliseconds after the delay was computed.
TOLERANCE_MS = 1500


@pytest.fixture
def service(make_settings: Callable[..., Settings], make_envoi: Callable[..., Envoi]) -> NotificationsService:
    settings = make_settings(sms_enabled=True, whatsapp_enabled=True, **TWILIO)
    return (make_envoi(settings, registry=HandlerRegistry())).notifications


async def delayed_jobs(service: NotificationsService) -> dict[str, Any]:
    jobs = await bull_queue(service.queue, NOTIFICATIONS_QUEUE).getDelayed()
    return {str(job.id): job for job in jobs}


def run_at_ms(job: Any) -> int:
    return int(job.timestamp) + int(job.delay)


def ms(moment: datetime) -> int:
    return round(moment.timestamp() * 1000)


def assert_runs_at(job: Any, moment: datetime) -> None:
    assert abs(run_at_ms(job) - ms(moment)) < TOLERANCE_MS, (run_at_ms(job), ms(moment))


async def test_day_and_hour_reminders_by_email_and_sms(service: NotificationsService) -> None:
    appointment = make_appointment(starts_in=timedelta(days=3))
    start = appointment.scheduled_at
    scheduled = await service.schedule_appointment_reminders(appointment=appointment)

    assert [(r.kind, r.channel, r.job_id) for r in scheduled] == [
        ("day", "email", "reminder:apt-1:day"),
        ("day", "sms", "reminder:apt-1:day:sms"),
        ("hour", "email", "reminder:apt-1:hour"),
        ("hour", "sms", "reminder:apt-1:hour:sms"),
    ]
    assert all(r.result.mode == "queued" for r in scheduled)
    assert [r.run_at for r in scheduled] == [start - timedelta(hours=24)] * 2 + [
        start - timedelta(hours=1)
    ] * 2

    jobs = await delayed_jobs(service)
    assert set(jobs) == {r.job_id for r in scheduled}
    for reminder in scheduled:
        assert_runs_at(jobs[reminder.job_id], reminder.run_at)

    day = parse_job(jobs["reminder:apt-1:day"].name, jobs["reminder:apt-1:day"].data)
    assert isinstance(day, SendEmailJob)
    assert day.to == LEAD_EMAIL and day.subject.startswith("Rappel : rendez-vous demain à ")
    assert "https://meet.example.com/abc-defg" in day.html
    assert day.metadata is not None
    assert day.metadata.appointment_id == "apt-1" and day.metadata.template_key == "reminder_day"
    stamp = start.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    assert day.metadata.idempotency_key == f"reminder:apt-1:day:email:{stamp}"
    sms = parse_job(jobs["reminder:apt-1:hour:sms"].name, jobs["reminder:apt-1:hour:sms"].data)
    assert isinstance(sms, SendSmsJob) and sms.to == LEAD_PHONE and "1 h" in sms.message


async def test_moving_an_appointment_replaces_both_reminders(service: NotificationsService) -> None:
    await service.schedule_appointment_reminders(appointment=make_appointment(starts_in=timedelta(days=3)))
    moved = make_appointment(starts_in=timedelta(days=5, hours=2))
    await service.schedule_appointment_reminders(appointment=moved)

    jobs = await delayed_jobs(service)
    assert set(jobs) == {
        "reminder:apt-1:day",
        "reminder:apt-1:day:sms",
        "reminder:apt-1:hour",
        "reminder:apt-1:hour:sms",
    }
    assert_runs_at(jobs["reminder:apt-1:day"], moved.scheduled_at - timedelta(hours=24))
    assert_runs_at(jobs["reminder:apt-1:hour:sms"], moved.scheduled_at - timedelta(hours=1))
    new_stamp = moved.scheduled_at.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    assert all(job.data["metadata"]["idempotencyKey"].endswith(new_stamp) for job in jobs.values())


async def test_a_reminder_whose_time_has_passed_is_not_scheduled(service: NotificationsService) -> None:
    await service.schedule_appointment_reminders(appointment=make_appointment(starts_in=timedelta(days=3)))
    soon = make_appointment(starts_in=timedelta(hours=3))
    scheduled = await service.schedule_appointment_reminders(appointment=soon)
    assert [(r.kind, r.channel) for r in scheduled] == [("hour", "email"), ("hour", "sms")]
    assert set(await delayed_jobs(service)) == {"reminder:apt-1:hour", "reminder:apt-1:hour:sms"}

    assert (
        await service.schedule_appointment_reminders(
            appointment=make_appointment(starts_in=timedelta(minutes=30))
        )
        == []
    )
    assert await delayed_jobs(service) == {}, "the moved appointment's old reminders are gone too"


async def test_cancelling_removes_every_reminder_and_only_this_appointments(
    service: NotificationsService,
) -> None:
    await service.schedule_appointment_reminders(appointment=make_appointment())
    await service.schedule_appointment_reminders(appointment=make_appointment(appointmentId="apt-2"))
    await service.cancel_appointment_reminders(appointment_id="apt-1")
    assert set(await delayed_jobs(service)) == {
        "reminder:apt-2:day",
        "reminder:apt-2:day:sms",
        "reminder:apt-2:hour",
        "reminder:apt-2:hour:sms",
    }
    await service.cancel_appointment_reminders(appointment_id="apt-1")  # idempotent
    assert len(await delayed_jobs(service)) == 4


async def test_email_only_without_a_phone_or_with_sms_disabled(
    make_settings: Callable[..., Settings], make_envoi: Callable[..., Envoi], service: NotificationsService
) -> None:
    no_phone = make_appointment()
    no_phone.lead.phone = None
    scheduled = await service.schedule_appointment_reminders(appointment=no_phone)
    assert [r.job_id for r in scheduled] == ["reminder:apt-1:day", "reminder:apt-1:hour"]

    quiet = make_envoi(make_settings(), registry=HandlerRegistry()).notifications
    scheduled = await quiet.schedule_appointment_reminders(
        appointment=make_appointment(appointmentId="apt-3")
    )
    assert [r.channel for r in scheduled] == ["email", "email"]


async def test_english_reminder_in_the_leads_time_zone(service: NotificationsService) -> None:
    appointment: Appointment = make_appointment(
        scheduledAt=(datetime.now(UTC) + timedelta(days=2))
        .replace(hour=14, minute=0, second=0, microsecond=0)
        .isoformat(),
        locale="en",
        timezone="America/New_York",
    )
    await service.schedule_appointment_reminders(appointment=appointment)
    job = (await delayed_jobs(service))["reminder:apt-1:day"]
    local = appointment.scheduled_at.astimezone(ZoneInfo("America/New_York"))
    expected = local.strftime("%-I:%M") + " " + local.strftime("%p")
    offset = int(local.utcoffset().total_seconds() // 3600)  # type: ignore[union-attr]
    assert job.data["subject"] == f"Reminder: appointment tomorrow at {expected} (UTC{offset})"
