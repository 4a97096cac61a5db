"""Appointment reminders and the WhatsApp follow-up: delayed jobs of the group `appointment:{id}`, each
recorded in `scheduled_messages` first (`envoi.notifications.schedule`), so that moving or cancelling an
appointment holds even when Redis cannot be told.

    kind                 job id                                   what
    reminder-day         reminder-{appointmentId}-day-{row}       SEND_EMAIL to the lead, 24 h before
    reminder-day-sms     reminder-{appointmentId}-day-sms-{row}   SEND_SMS (SMS enabled and a phone given)
    reminder-hour        reminder-{appointmentId}-hour-{row}      SEND_EMAIL, 1 h before
    reminder-hour-sms    reminder-{appointmentId}-hour-sms-{row}  SEND_SMS, 1 h before
    followup-whatsapp    followup-{appointmentId}-whatsapp-{row}  the WhatsApp follow-up, 10 min after
                                                                  the confirmation

`{row}` is the row's id: each scheduling adds jobs of its own. Job ids hold no `:`, which Node BullMQ
refuses in custom ids. Jobs added before this layout used `reminder:{id}:day`, `reminder:{id}:day:sms`,
... and `followup:{id}:whatsapp`, with no row: moving or cancelling removes those ids from Redis too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

from envoi.notifications.schedule import Slot

ReminderKind = Literal["day", "hour"]
ReminderChannel = Literal["email", "sms"]

#: How long before the start each reminder goes out.
REMINDER_OFFSETS: dict[ReminderKind, timedelta] = {"day": timedelta(hours=24), "hour": timedelta(hours=1)}
#: The WhatsApp follow-up after a confirmation (the original ran it in a process-local setTimeout).
FOLLOWUP_DELAY = timedelta(minutes=10)
FOLLOWUP_KIND = "followup-whatsapp"
REMINDER_KINDS = tuple(
    f"reminder-{kind}{'' if channel == 'email' else '-' + channel}"
    for kind in REMINDER_OFFSETS
    for channel in ("email", "sms")
)


def appointment_group(appointment_id: str) -> str:
    return f"appointment:{appointment_id}"


def reminder_slot(
    appointment_id: str, kind: ReminderKind, channel: ReminderChannel, due_at: datetime
) -> Slot:
    name = f"{kind}{'' if channel == 'email' else '-' + channel}"
    return Slot.new(
        appointment_group(appointment_id),
        f"reminder-{name}",
        due_at,
        job_prefix=f"reminder-{appointment_id}-{name}",
    )


def followup_slot(appointment_id: str, due_at: datetime) -> Slot:
    return Slot.new(
        appointment_group(appointment_id),
        FOLLOWUP_KIND,
        due_at,
        job_prefix=f"followup-{appointment_id}-whatsapp",
    )


def legacy_reminder_job_ids(appointment_id: str) -> list[str]:
    """The ids reminders had before `scheduled_messages` (with `:`): still removed on a move or cancel."""
    return [
        f"reminder:{appointment_id}:{kind}{'' if channel == 'email' else ':' + channel}"
        for kind in REMINDER_OFFSETS
        for channel in ("email", "sms")
    ]


def legacy_followup_job_id(appointment_id: str) -> str:
    return f"followup:{appointment_id}:whatsapp"


def reminder_of(slot_kind: str) -> tuple[ReminderKind, ReminderChannel]:
    """`reminder-day-sms` -> ("day", "sms"): what a reminder row is, for the API's answer."""
    _, kind, *channel = slot_kind.split("-")
    if kind not in REMINDER_OFFSETS:
        raise ValueError(f"not a reminder: {slot_kind!r}")
    return kind, "sms" if channel == ["sms"] else "email"


def stamp(moment: datetime) -> str:
    """A compact UTC timestamp for the confirmation's idempotency keys: a moved appointment's new
    confirmation gets new keys, so the ledger does not swallow it as a duplicate of the old one."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
