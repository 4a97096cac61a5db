"""Appointment reminders: delayed jobs the caller can replace (moved appointment) or cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response, status

from envoi.api.deps import ApiKey, NotificationsDep, SettingsDep
from envoi.api.errors import invalid
from envoi.api.intake import channel_warnings
from envoi.api.schemas import RemindersScheduled, ScheduledReminder, ValidationProblem
from envoi.notifications.models import Appointment

router = APIRouter(prefix="/v1/appointments", tags=["reminders"], dependencies=[ApiKey])

AppointmentId = Annotated[str, Path(alias="appointmentId", min_length=1, max_length=100)]


@router.put(
    "/{appointmentId}/reminders",
    response_model=RemindersScheduled,
    responses={422: {"model": ValidationProblem}},
    summary="Schedule (or reschedule) the day-before and hour-before reminders",
)
async def schedule_reminders(
    appointment_id: AppointmentId, appointment: Appointment, service: NotificationsDep, settings: SettingsDep
) -> RemindersScheduled | Response:
    if appointment.appointment_id != appointment_id:
        return invalid(
            [{"in": "body", "path": "appointmentId", "reason": "must match the appointmentId in the URL"}]
        )
    scheduled = await service.schedule_appointment_reminders(appointment=appointment)
    return RemindersScheduled(
        reminders=[
            ScheduledReminder(kind=r.kind, channel=r.channel, job_id=r.job_id, run_at=r.run_at)
            for r in scheduled
            # With Redis down a delayed job is not run now but dead-lettered: it is not scheduled.
            if r.result.succeeded is not False
        ],
        warnings=channel_warnings(settings, ["sms"] if appointment.lead.phone else []),
    )


@router.delete(
    "/{appointmentId}/reminders",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Cancel the reminders (and the WhatsApp follow-up) still waiting",
)
async def cancel_reminders(appointment_id: AppointmentId, service: NotificationsDep) -> Response:
    await service.cancel_appointment_reminders(appointment_id=appointment_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
