"""A user's in-app inbox: list (newest first, by cursor), count unread, mark read.

Every query filters on `user_id`: a notification id from another user's inbox behaves as one that does
not exist. Ids are ULIDs, which sort by creation time, so the cursor is the last id seen; it is handed
out base64-encoded, so that callers treat it as opaque and the format can change.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.db.models import Notification, NotificationStatus
from envoi.db.types import utcnow

MAX_LIMIT = 100


@dataclass(frozen=True, slots=True)
class Page:
    items: Sequence[Notification]
    #: Pass back as `cursor` for the next page; None on the last page.
    next_cursor: str | None


def encode_cursor(notification_id: str) -> str:
    return base64.urlsafe_b64encode(notification_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        value = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("invalid cursor") from None
    if len(value) != 26 or not value.isalnum():
        raise ValueError("invalid cursor")
    return value


async def list_notifications(
    session: AsyncSession,
    *,
    user_id: str,
    limit: int = 20,
    cursor: str | None = None,
    unread_only: bool = False,
) -> Page:
    """One page of the user's notifications, newest first. ValueError on a bad limit or cursor."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
    query = select(Notification).where(Notification.user_id == user_id)
    if unread_only:
        query = query.where(Notification.read_at.is_(None))
    if cursor is not None:
        query = query.where(Notification.id < decode_cursor(cursor))
    # One row more than asked tells whether another page exists, without a count.
    rows = list((await session.scalars(query.order_by(Notification.id.desc()).limit(limit + 1))).all())
    items = rows[:limit]
    next_cursor = encode_cursor(items[-1].id) if len(rows) > limit else None
    return Page(items=items, next_cursor=next_cursor)


async def unread_count(session: AsyncSession, *, user_id: str) -> int:
    query = select(func.count()).where(Notification.user_id == user_id, Notification.read_at.is_(None))
    return int((await session.scalar(query)) or 0)


async def mark_read(session: AsyncSession, *, user_id: str, notification_id: str) -> bool:
    """True when the notification is the user's (read now, or already); False when it is not found."""
    notification = await session.scalar(
        select(Notification).where(Notification.id == notification_id, Notification.user_id == user_id)
    )
    if notification is None:
        return False
    if notification.read_at is None:
        notification.read_at = utcnow()
        notification.status = NotificationStatus.READ
        await session.flush()
    return True


async def mark_all_read(session: AsyncSession, *, user_id: str) -> int:
    """Mark every unread notification of the user read; returns how many changed."""
    now = utcnow()
    result = await session.execute(
        update(Notification)
        .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        .values(read_at=now, status=NotificationStatus.READ, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
