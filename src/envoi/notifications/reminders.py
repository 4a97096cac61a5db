"""Appointment reminders as delayed bullmq jobs, one job per reminder and channel, with ids the caller can
predict, so that moving or cancelling an appointment finds them again without a lookup table:

    reminder:{appointmentId}:day        SEND_EMAIL to the lead, 24 h before the start
    reminder:{appointmentId}:day:sms    SEND_SMS to the lead (SMS enabled and a phone given)
    reminder:{appointmentId}:hour       SEND_EMAIL, 1 h before
    reminder:{appointmentId}:hour:sms   SEND_SMS, 1 h before
    followup:{appointmentId}:whatsapp   the WhatsApp follow-up, 10 min after the confirmation

bullmq cannot change a job's delay, and ignores an `add` whose id already exists: moving an appointment
removes the jobs, then adds them again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from envoi.queue.base import EnqueueResult

ReminderKind = Literal["day", "hour"]
ReminderChannel = Literal["email", "sms"]

#: How long before the start each reminder goes out.
REMINDER_OFFSETS: dict[ReminderKind, timedelta] = {"day": timedelta(hours=24), "hour": timedelta(hours=1)}
#: The WhatsApp follow-up after a confirmation (the original ran it in a process-local setTimeout).
FOLLOWUP_DELAY = timedelta(minutes=10)


@dataclass(frozen=True, slots=True)
class ScheduledReminder:
    kind: ReminderKind
    channel: ReminderChannel
    job_id: str
    run_at: datetime
    #: `mode="sync", succeeded=False` when the queue was unavailable: the job is in the dead letters.
    result: EnqueueResult


def reminder_job_id(appointment_id: str, kind: ReminderKind, channel: ReminderChannel = "email") -> str:
    base = f"reminder:{appointment_id}:{kind}"
    return base if channel == "email" else f"{base}:{channel}"


def followup_job_id(appointment_id: str) -> str:
    return f"followup:{appointment_id}:whatsapp"


def reminder_job_ids(appointment_id: str) -> list[str]:
    return [
        reminder_job_id(appointment_id, kind, channel)
        for kind in REMINDER_OFFSETS
        for channel in ("email", "sms")
    ]


def stamp(moment: datetime) -> str:
    """A compact UTC timestamp for idempotency keys: a moved appointment gets new keys, so the ledger
    does not swallow its messages as duplicates of the old ones."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
