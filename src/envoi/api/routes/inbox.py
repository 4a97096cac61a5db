"""A user's in-app inbox: create (as a job), list, count unread, mark read."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from envoi.api.deps import ApiKey, EnvoiDep, IdempotencyDep, IdempotencyKey, SessionDep
from envoi.api.errors import invalid
from envoi.api.intake import submit_job, with_idempotency_key
from envoi.api.routes.jobs import ACCEPTED_RESPONSES, accepted
from envoi.api.schemas import (
    Count,
    InAppRequest,
    JobAccepted,
    NotificationItem,
    NotificationPage,
    Problem,
    ValidationProblem,
)
from envoi.db.models import Notification
from envoi.notifications import inbox
from envoi.notifications.jobs import CreateInAppNotificationJob
from envoi.queue.jobs import parse_model

router = APIRouter(prefix="/v1/users/{userId}/notifications", tags=["inbox"], dependencies=[ApiKey])

UserId = Annotated[str, Path(alias="userId", min_length=1, max_length=255)]


def item(row: Notification) -> NotificationItem:
    # The JSON codec hands back any stored metadata encodable; one that is not an object (a row written
    # by hand) is shown wrapped rather than failing the user's whole inbox.
    meta = row.meta
    return NotificationItem(
        id=row.id,
        user_id=row.user_id,
        title=row.title,
        message=row.message,
        metadata=meta if meta is None or isinstance(meta, dict) else {"value": meta},
        status=row.status,
        read_at=row.read_at,
        created_at=row.created_at,
    )


@router.post(
    "", status_code=status.HTTP_202_ACCEPTED, response_model=JobAccepted, responses=ACCEPTED_RESPONSES
)
async def create_notification(
    user_id: UserId,
    body: InAppRequest,
    envoi: EnvoiDep,
    store: IdempotencyDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> JobAccepted:
    """Enqueue a CREATE_INAPP_NOTIFICATION job for the user (the worker writes the row)."""
    data: dict[str, Any] = {"userId": user_id, "title": body.title, "message": body.message}
    if body.metadata is not None:
        data["metadata"] = body.metadata
    job = parse_model(
        CreateInAppNotificationJob,
        CreateInAppNotificationJob.JOB_NAME,
        with_idempotency_key(data, idempotency_key),
    )
    submission = await submit_job(envoi.queue, store, job=job, idempotency_key=idempotency_key)
    return accepted(submission, response, [])


@router.get("", response_model=NotificationPage, responses={422: {"model": ValidationProblem}})
async def list_notifications(
    user_id: UserId,
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=inbox.MAX_LIMIT)] = 20,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
    unread: Annotated[bool, Query(description="Only unread notifications")] = False,
) -> NotificationPage | Response:
    """Newest first; pass `nextCursor` back as `cursor` for the next page."""
    try:
        page = await inbox.list_notifications(
            session, user_id=user_id, limit=limit, cursor=cursor, unread_only=unread
        )
    except ValueError as exc:
        return invalid([{"in": "query", "path": "cursor", "reason": str(exc)}])
    return NotificationPage(items=[item(row) for row in page.items], next_cursor=page.next_cursor)


@router.get("/unread-count", response_model=Count)
async def unread_count(user_id: UserId, session: SessionDep) -> Count:
    return Count(count=await inbox.unread_count(session, user_id=user_id))


@router.post("/read-all", response_model=Count)
async def mark_all_read(user_id: UserId, session: SessionDep) -> Count:
    """Mark every unread notification read; `count` is how many changed."""
    return Count(count=await inbox.mark_all_read(session, user_id=user_id))


@router.post(
    "/{id}/read",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"model": Problem, "description": "Not this user's notification"}},
)
async def mark_read(
    user_id: UserId,
    notification_id: Annotated[str, Path(alias="id", min_length=1, max_length=64)],
    session: SessionDep,
) -> Response:
    if not await inbox.mark_read(session, user_id=user_id, notification_id=notification_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="No such notification for this user")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
