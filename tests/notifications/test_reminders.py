"""Reminders as delayed jobs in a real Redis, each recorded in `scheduled_messages`: what is scheduled,
when, under which ids, and what moving or cancelling leaves in Redis and in the records.

No handler is registered: the jobs stay in bullmq's delayed set, where the test reads them back.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from envoi.config import Settings
from envoi.db.models import ScheduleStatus
from envoi.notifications.jobs import SendEmailJob, SendSmsJob, parse_job
from envoi.notifications.models import Appointment
from envoi.notifications.service import NotificationsService
from envoi.queue import NOTIFICATIONS_QUEUE, HandlerRegistry
from envoi.runtime import Envoi
from tests.helpers import bull_queue
from tests.notifications.factories import LEAD_EMAIL, LEAD_PHONE, TWILIO, make_appointment

#: bullmq stamps the job when it is added, a few milliseconds after the delay was computed.
TOLERANCE_MS = 1500
LEGACY_IDS = [
    "reminder:apt-1:day",
    "reminder:apt-1:day:sms",
    "reminder:apt-1:hour",
    "followup:apt-1:whatsapp",
]


@pytest.fixture
def envoi(make_settings: Callable[..., Settings], make_envoi: Callable[..., Envoi]) -> Envoi:
    settings = make_settings(sms_enabled=True, whatsapp_enabled=True, **TWILIO)
    return make_envoi(settings, registry=HandlerRegistry())


@pytest.fixture
def service(envoi: Envoi) -> NotificationsService:
    return envoi.notifications


async def delayed_jobs(service: NotificationsService) -> dict[str, Any]:
    jobs = await bull_queue(service.queue, NOTIFICATIONS_QUEUE).getDelayed()
    return {str(job.id): job for job in jobs}


async def statuses(envoi: Envoi, appointment_id: str = "apt-1") -> dict[str, str]:
    """job id -> status of the appointment's rows in `scheduled_messages`."""
    return {row.job_id: row.status for row in await envoi.schedule.rows(f"appointment:{appointment_id}")}


def run_at_ms(job: Any) -> int:
    return int(job.timestamp) + int(job.delay)


def assert_runs_at(job: Any, moment: datetime) -> None:
    assert abs(run_at_ms(job) - round(moment.timestamp() * 1000)) < TOLERANCE_MS, (run_at_ms(job), moment)


async def test_day_and_hour_reminders_by_email_and_sms(envoi: Envoi, service: NotificationsService) -> None:
    appointment = make_appointment(starts_in=timedelta(days=3))
    start = appointment.scheduled_at
    replacement = await service.schedule_appointment_reminders(appointment=appointment)

    kinds = [s.slot.kind for s in replacement.scheduled]
    assert kinds == ["reminder-day", "reminder-day-sms", "reminder-hour", "reminder-hour-sms"]
    for s, prefix in zip(
        replacement.scheduled,
        [
            "reminder-apt-1-day-",
            "reminder-apt-1-day-sms-",
            "reminder-apt-1-hour-",
            "reminder-apt-1-hour-sms-",
        ],
        strict=True,
    ):
        assert s.slot.job_id == prefix + s.slot.id, "Node BullMQ can add and look up these ids: no ':'"
        assert s.queued
    assert [s.slot.due_at for s in replacement.scheduled] == [start - timedelta(hours=24)] * 2 + [
        start - timedelta(hours=1)
    ] * 2
    assert (replacement.superseded, replacement.removed) == ([], True)

    jobs = await delayed_jobs(service)
    assert set(jobs) == {s.slot.job_id for s in replacement.scheduled}
    for s in replacement.scheduled:
        assert_runs_at(jobs[s.slot.job_id], s.slot.due_at)
    assert set((await statuses(envoi)).values()) == {ScheduleStatus.SCHEDULED}

    day_slot = replacement.scheduled[0].slot
    day = parse_job(jobs[day_slot.job_id].name, jobs[day_slot.job_id].data)
    assert isinstance(day, SendEmailJob)
    assert day.to == LEAD_EMAIL and day.subject.startswith("Rappel : rendez-vous demain à ")
    assert "https://meet.example.com/abc-defg" in day.html
    assert day.metadata is not None
    assert day.metadata.appointment_id == "apt-1" and day.metadata.template_key == "reminder_day"
    # The handler checks this row before sending; the ledger's key names the row (one row, one message).
    assert day.metadata.schedule_id == day_slot.id
    assert day.metadata.idempotency_key == f"appointment:apt-1:reminder-day:{day_slot.id}"
    sms_slot = replacement.scheduled[3].slot
    sms = parse_job(jobs[sms_slot.job_id].name, jobs[sms_slot.job_id].data)
    assert isinstance(sms, SendSmsJob) and sms.to == LEAD_PHONE and "1 h" in sms.message


async def test_moving_an_appointment_supersedes_the_old_reminders(
    envoi: Envoi, service: NotificationsService
) -> None:
    first = await service.schedule_appointment_reminders(
        appointment=make_appointment(starts_in=timedelta(days=3))
    )
    moved = make_appointment(starts_in=timedelta(days=5, hours=2))
    second = await service.schedule_appointment_reminders(appointment=moved)

    old_ids = {s.slot.job_id for s in first.scheduled}
    assert set(second.superseded) == old_ids and second.removed
    jobs = await delayed_jobs(service)
    assert set(jobs) == {s.slot.job_id for s in second.scheduled}, "the old jobs are out of Redis"
    by_kind = {s.slot.kind: s.slot.job_id for s in second.scheduled}
    assert_runs_at(jobs[by_kind["reminder-day"]], moved.scheduled_at - timedelta(hours=24))
    assert_runs_at(jobs[by_kind["reminder-hour-sms"]], moved.scheduled_at - timedelta(hours=1))
    rows = await statuses(envoi)
    assert {rows[job_id] for job_id in old_ids} == {ScheduleStatus.SUPERSEDED}
    assert {rows[s.slot.job_id] for s in second.scheduled} == {ScheduleStatus.SCHEDULED}


async def test_a_reminder_whose_time_has_passed_is_not_scheduled(service: NotificationsService) -> None:
    await service.schedule_appointment_reminders(appointment=make_appointment(starts_in=timedelta(days=3)))
    soon = await service.schedule_appointment_reminders(
        appointment=make_appointment(starts_in=timedelta(hours=3))
    )
    assert [s.slot.kind for s in soon.scheduled] == ["reminder-hour", "reminder-hour-sms"]
    assert set(await delayed_jobs(service)) == {s.slot.job_id for s in soon.scheduled}

    too_late = await service.schedule_appointment_reminders(
        appointment=make_appointment(starts_in=timedelta(minutes=30))
    )
    assert too_late.scheduled == []
    assert await delayed_jobs(service) == {}, "the moved appointment's old reminders are gone too"


async def test_cancelling_removes_every_reminder_and_only_this_appointments(
    envoi: Envoi, service: NotificationsService
) -> None:
    mine = await service.schedule_appointment_reminders(appointment=make_appointment())
    other = await service.schedule_appointment_reminders(appointment=make_appointment(appointmentId="apt-2"))
    cancelled = await service.cancel_appointment_reminders(appointment_id="apt-1")
    assert sorted(cancelled.cancelled) == sorted(s.slot.job_id for s in mine.scheduled)
    assert cancelled.complete and cancelled.known
    assert set(await delayed_jobs(service)) == {s.slot.job_id for s in other.scheduled}
    assert set((await statuses(envoi)).values()) == {ScheduleStatus.CANCELLED}

    again = await service.cancel_appointment_reminders(appointment_id="apt-1")  # idempotent
    assert (again.cancelled, again.complete) == ([], True)
    assert len(await delayed_jobs(service)) == 4


async def test_reminders_scheduled_under_the_old_ids_are_found_by_a_move_and_a_cancel(
    service: NotificationsService,
) -> None:
    """Jobs added before the records existed, with `:` in their ids (as the Python bullmq still
    allows), are removed as well: a deploy does not leave them to fire."""
    queue = bull_queue(service.queue, NOTIFICATIONS_QUEUE)
    data = {"to": LEAD_EMAIL, "subject": "Rappel", "html": "<p>Rappel</p>"}

    async def add_legacy() -> None:
        for job_id in LEGACY_IDS:
            await queue.add("SEND_EMAIL", data, {"jobId": job_id, "delay": 3_600_000})

    await add_legacy()
    moved = await service.schedule_appointment_reminders(appointment=make_appointment())
    # A move replaces the reminders; the follow-up belongs to the confirmation.
    assert set(await delayed_jobs(service)) == {s.slot.job_id for s in moved.scheduled} | {
        "followup:apt-1:whatsapp"
    }
    await add_legacy()
    await service.cancel_appointment_reminders(appointment_id="apt-1")
    assert await delayed_jobs(service) == {}


async def test_email_only_without_a_phone_or_with_sms_disabled(
    make_settings: Callable[..., Settings], make_envoi: Callable[..., Envoi], service: NotificationsService
) -> None:
    no_phone = make_appointment()
    no_phone.lead.phone = None
    replacement = await service.schedule_appointment_reminders(appointment=no_phone)
    assert [s.slot.kind for s in replacement.scheduled] == ["reminder-day", "reminder-hour"]

    quiet = make_envoi(make_settings(), registry=HandlerRegistry()).notifications
    replacement = await quiet.schedule_appointment_reminders(
        appointment=make_appointment(appointmentId="apt-3")
    )
    assert [s.slot.kind for s in replacement.scheduled] == ["reminder-day", "reminder-hour"]


async def test_english_reminder_in_the_leads_time_zone(service: NotificationsService) -> None:
    appointment: Appointment = make_appointment(
        scheduledAt=(datetime.now(UTC) + timedelta(days=2))
        .replace(hour=14, minute=0, second=0, microsecond=0)
        .isoformat(),
        locale="en",
        timezone="America/New_York",
    )
    replacement = await service.schedule_appointment_reminders(appointment=appointment)
    job = (await delayed_jobs(service))[replacement.scheduled[0].slot.job_id]
    local = appointment.scheduled_at.astimezone(ZoneInfo("America/New_York"))
    expected = local.strftime("%-I:%M") + " " + local.strftime("%p")
    offset = int(local.utcoffset().total_seconds() // 3600)  # type: ignore[union-attr]
    assert job.data["subject"] == f"Reminder: appointment tomorrow at {expected} (UTC{offset})"
