"""Abandon recovery: cancel a sequence when the lead comes back (`POST /v1/flows/abandon-recovery`
schedules it)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Response, status

from envoi.api.deps import ApiKey, NotificationsDep
from envoi.api.routes.reminders import UNAVAILABLE, cancellation_answer
from envoi.api.schemas import ENTITY_ID_PATTERN, CancellationReport, Problem

router = APIRouter(prefix="/v1/abandons", tags=["flows"], dependencies=[ApiKey])

AbandonId = Annotated[str, Path(alias="abandonId", min_length=1, max_length=100, pattern=ENTITY_ID_PATTERN)]


@router.delete(
    "/{abandonId}/recovery",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={
        202: {"model": CancellationReport, "description": "Cancelled, with something left to say"},
        404: {"model": Problem, "description": "No sequence was ever scheduled under this abandonId"},
        **UNAVAILABLE,
    },
    summary="Cancel the recovery emails not sent yet",
)
async def cancel_recovery(abandon_id: AbandonId, service: NotificationsDep) -> Response:
    """204: every step not sent yet is cancelled and out of the queue. 202 (with a body) when a step
    was being sent at that moment, or Redis could not be told (the cancelled steps then complete
    without sending when their time comes)."""
    outcome = await service.cancel_abandon_recovery(abandon_id=abandon_id)
    if not outcome.known:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"No recovery sequence for {abandon_id!r}")
    return cancellation_answer(outcome)
