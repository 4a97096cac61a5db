"""Product flows: one call renders and enqueues every message of the flow (`NotificationsService`)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from fastapi import APIRouter, status

from envoi.api.deps import ApiKey, EnvoiDep, NotificationsDep
from envoi.api.intake import channel_warnings
from envoi.api.schemas import (
    AbandonRecoveryAccepted,
    AbandonRecoveryRequest,
    FlowAccepted,
    FlowJob,
    InvitationEmailRequest,
    Problem,
    TemplateProblem,
    ValidationProblem,
    VerificationEmailRequest,
)
from envoi.notifications.models import Appointment
from envoi.queue.base import EnqueueResult
from envoi.runtime import Envoi

router = APIRouter(prefix="/v1/flows", tags=["flows"], dependencies=[ApiKey])

RESPONSES: dict[int | str, dict[str, Any]] = {
    422: {"model": ValidationProblem},
    500: {"model": TemplateProblem, "description": "A message template failed to render"},
}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": Problem, "description": "The database could not record it: nothing was scheduled"}
}
#: Every flow answers 202 with the jobs it enqueued.
flow = partial(
    router.post, status_code=status.HTTP_202_ACCEPTED, response_model=FlowAccepted, responses=RESPONSES
)


def accepted(results: Sequence[EnqueueResult], envoi: Envoi, skipped: Sequence[str] = ()) -> FlowAccepted:
    """`mode` is "sync" when any job of the flow ran inline (Redis unavailable); `skipped` are the
    channels the flow would have used and that are switched off (named in `warnings`)."""
    modes = {result.mode for result in results}
    if not modes:
        modes = {"sync" if envoi.queue.fallback_active else "queued"}
    return FlowAccepted(
        jobs=[FlowJob(job_id=r.job_id, job_name=r.job_name) for r in results],
        mode="sync" if "sync" in modes else "queued",
        warnings=channel_warnings(envoi.settings, skipped),
    )


@flow("/verification-email")
async def verification_email(
    body: VerificationEmailRequest, service: NotificationsDep, envoi: EnvoiDep
) -> FlowAccepted:
    results = await service.send_verification_email(
        email=str(body.email),
        first_name=body.first_name,
        verification_token=body.verification_token,
        locale=body.locale,
    )
    return accepted(results, envoi)


@flow("/invitation-email")
async def invitation_email(
    body: InvitationEmailRequest, service: NotificationsDep, envoi: EnvoiDep
) -> FlowAccepted:
    results = await service.send_invitation_email(
        email=str(body.email),
        organization_name=body.organization_name,
        inviter_name=body.inviter_name,
        invitation_token=body.invitation_token,
        role=body.role,
        locale=body.locale,
    )
    return accepted(results, envoi)


@router.post(
    "/abandon-recovery",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=AbandonRecoveryAccepted,
    responses={**RESPONSES, **UNAVAILABLE},
)
async def abandon_recovery(
    body: AbandonRecoveryRequest, service: NotificationsDep, envoi: EnvoiDep
) -> AbandonRecoveryAccepted:
    """The whole recovery sequence as delayed jobs (ABANDON_RECOVERY_SCHEDULE), one per step; the same
    `abandonId` again replaces the steps not sent yet. `mode` is "sync" when Redis was unavailable: the
    steps are then in the dead letters with their due times."""
    recovery = await service.schedule_abandon_recovery(
        email=str(body.email),
        first_name=body.first_name,
        resume_url=body.resume_url,
        locale=body.locale,
        abandon_id=body.abandon_id,
        offer=body.offer,
        timezone=body.timezone,
    )
    flow_answer = accepted([s.result for s in recovery.replacement.scheduled], envoi)
    return AbandonRecoveryAccepted(
        jobs=flow_answer.jobs, mode=flow_answer.mode, abandon_id=recovery.abandon_id
    )


@router.post(
    "/appointment-confirmation",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=FlowAccepted,
    responses={**RESPONSES, **UNAVAILABLE},
)
async def appointment_confirmation(
    appointment: Appointment, service: NotificationsDep, envoi: EnvoiDep
) -> FlowAccepted:
    results = await service.send_appointment_confirmation(appointment=appointment)
    return accepted(results, envoi, ("sms", "whatsapp") if appointment.lead.phone else ())
