"""In-app notifications: a row in `notifications`, the user's inbox. Idempotent on `idempotency_key`:
the same job run twice (a retry after a lost acknowledgement) leaves one row.

Rows read as the original system's: type `IN_APP`, the metadata kept whole (its `notificationId`
included), SQL NULL when there is none."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from envoi.channels.base import ChannelName, InAppMessage, SendReceipt
from envoi.db.models import Notification, NotificationStatus, NotificationType
from envoi.db.session import Database
from envoi.db.types import utcnow

log = logging.getLogger("envoi.channels.inapp")


class InAppChannel:
    name = ChannelName.INAPP
    provider = "inapp"

    def __init__(self, db: Database) -> None:
        self.db = db

    async def send(self, message: InAppMessage) -> SendReceipt:
        existing = await self._find(message.idempotency_key)
        if existing is not None:
            return SendReceipt(provider=self.provider, provider_message_id=existing, duplicate=True)
        row = Notification(
            user_id=message.user_id,
            type=NotificationType.IN_APP,
            title=message.title,
            message=message.message,
            meta=message.metadata,
            status=NotificationStatus.SENT,
            idempotency_key=message.idempotency_key,
            sent_at=utcnow(),
        )
        try:
            async with self.db.session() as session:
                session.add(row)
        except IntegrityError:
            # Another run inserted it between our read and our write: theirs is the one.
            existing = await self._find(message.idempotency_key)
            if existing is None:
                raise
            return SendReceipt(provider=self.provider, provider_message_id=existing, duplicate=True)
        log.info("In-app notification %s created for user %s", row.id, message.user_id)
        return SendReceipt(provider=self.provider, provider_message_id=row.id)

    async def _find(self, key: str) -> str | None:
        async with self.db.session() as session:
            found: str | None = await session.scalar(
                select(Notification.id).where(Notification.idempotency_key == key)
            )
            return found

    async def aclose(self) -> None:
        return None
