"""Appointment reminders: delayed jobs the caller can replace (moved appointment) or cancel.

Both routes answer what really happened. The SQL record comes first and decides (a reminder recorded as
cancelled or superseded is never sent); Redis is told next, when it answers:

    PUT     200 {"reminders": [...]}          all scheduled in the queue, the replaced ones removed
            202 {... "deadLettered", "superseded", "sending", "removedFromQueue"}   recorded, with
                                              something left to say (Redis not told, an old one in flight)
            503                               the database could not record it: nothing was changed
    DELETE  204                               cancelled, out of the queue, none being sent
            202 {"cancelled", "sending", "removedFromQueue"}    recorded, with something left to say
            503                               nothing could be recorded, nor removed from Redis
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Response, status
from fastapi.responses import JSONResponse

from envoi.api.deps import ApiKey, NotificationsDep, SettingsDep
from envoi.api.errors import RETRY_AFTER_S, invalid
from envoi.api.intake import channel_warnings
from envoi.api.schemas import (
    ENTITY_ID_PATTERN,
    CancellationReport,
    Problem,
    RemindersScheduled,
    ScheduledReminder,
    ValidationProblem,
)
from envoi.notifications.models import Appointment
from envoi.notifications.reminders import reminder_of
from envoi.notifications.scheduler import Cancellation, Scheduled

router = APIRouter(prefix="/v1/appointments", tags=["reminders"], dependencies=[ApiKey])

AppointmentId = Annotated[
    str, Path(alias="appointmentId", min_length=1, max_length=100, pattern=ENTITY_ID_PATTERN)
]
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": Problem, "description": "The database could not record it: nothing was changed"}
}


def _reminder(scheduled: Scheduled) -> ScheduledReminder:
    kind, channel = reminder_of(scheduled.slot.kind)
    return ScheduledReminder(
        kind=kind, channel=channel, job_id=scheduled.slot.job_id, run_at=scheduled.slot.due_at
    )


def cancellation_answer(outcome: Cancellation) -> Response:
    """204 when there is nothing left to say; 202 with what was recorded otherwise."""
    if outcome.complete:
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    report = CancellationReport(
        cancelled=outcome.cancelled, sending=outcome.sending, removed_from_queue=outcome.removed
    )
    return JSONResponse(report.model_dump(by_alias=True), status_code=status.HTTP_202_ACCEPTED)


@router.put(
    "/{appointmentId}/reminders",
    response_model=RemindersScheduled,
    responses={
        202: {"model": RemindersScheduled, "description": "Recorded; Redis could not be told everything"},
        422: {"model": ValidationProblem},
        **UNAVAILABLE,
    },
    summary="Schedule (or reschedule) the day-before and hour-before reminders",
)
async def schedule_reminders(
    appointment_id: AppointmentId,
    appointment: Appointment,
    service: NotificationsDep,
    settings: SettingsDep,
    response: Response,
) -> RemindersScheduled | Response:
    if appointment.appointment_id != appointment_id:
        return invalid(
            [{"in": "body", "path": "appointmentId", "reason": "must match the appointmentId in the URL"}]
        )
    replacement = await service.schedule_appointment_reminders(appointment=appointment)
    answer = RemindersScheduled(
        reminders=[_reminder(s) for s in replacement.scheduled if s.queued],
        # With Redis down a delayed job is not run now but dead-lettered (a retry keeps its due time).
        dead_lettered=[_reminder(s) for s in replacement.scheduled if not s.queued],
        superseded=replacement.superseded,
        sending=replacement.sending,
        removed_from_queue=replacement.removed,
        warnings=channel_warnings(settings, ["sms"] if appointment.lead.phone else []),
    )
    if answer.dead_lettered or answer.sending or not answer.removed_from_queue:
        response.status_code = status.HTTP_202_ACCEPTED
    return answer


@router.delete(
    "/{appointmentId}/reminders",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        202: {"model": CancellationReport, "description": "Cancelled, with something left to say"},
        **UNAVAILABLE,
    },
    summary="Cancel the reminders (and the WhatsApp follow-up) not sent yet",
)
async def cancel_reminders(appointment_id: AppointmentId, service: NotificationsDep) -> Response:
    outcome = await service.cancel_appointment_reminders(appointment_id=appointment_id)
    if not outcome.known and not outcome.removed:
        # No record to cancel, and Redis (which may hold reminders scheduled before the records
        # existed) could not be asked: nothing was done.
        return JSONResponse(
            {"detail": "Redis is unavailable and no reminder of this appointment is recorded: try again"},
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    return cancellation_answer(outcome)
