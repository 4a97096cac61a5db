"""The in-app digest (DIGEST_WINDOW): notifications a user has not read within the window are summed
up in one email, instead of one email each, or none if they read them first.

"Offline" is decided by what the user does, not by a presence signal envoi does not have: a user who
has not read a notification DIGEST_WINDOW after it was created was not there to see it.

    CREATE_INAPP_NOTIFICATION (a new row) ─► notified(user): arm the user's digest if none is armed
        (`inbox_digests.due_at` set by one conditional UPDATE or INSERT: one digest per window)
        ─► a SEND_INBOX_DIGEST job delayed until due_at, carrying the window (since, until]
    SEND_INBOX_DIGEST ─► disarm; the user's notifications created in (since, until] and still unread
        none: nothing sent ("cancelled": they were read)
        some: one SEND_EMAIL listing them, to the user's digest address (preferences `email`),
              idempotency key `digest:{user}:{until}` (a retried digest job sends one email)
        unread ones created after `until` (while the job waited to run) arm the next digest

This module is the only reader and writer of `inbox_digests`. A user with no digest address, or
DIGEST_WINDOW unset, costs nothing: nothing is armed.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any, ClassVar

from pydantic import AwareDatetime, ConfigDict, Field
from pydantic.alias_generators import to_camel
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from envoi.db.models import InboxDigest, Notification
from envoi.db.session import Database
from envoi.db.types import utcnow
from envoi.notifications.jobs import JobMetadata, SendEmailJob
from envoi.notifications.rendering import Renderer
from envoi.notifications.service import digest
from envoi.queue.jobs import HandlerRegistry, JobContext, wire_form
from envoi.queue.names import NOTIFICATIONS_QUEUE
from envoi.queue.service import QueueService
from envoi.recipients import Category, PreferencesService
from envoi.validation import CleanInput

log = logging.getLogger("envoi.notifications.digest")

SEND_INBOX_DIGEST = "SEND_INBOX_DIGEST"
TEMPLATE = "inbox_digest"
#: The most notifications one digest lists (the email says how many more there are).
MAX_ITEMS = 50


class InboxDigestJob(CleanInput):
    JOB_NAME: ClassVar[str] = SEND_INBOX_DIGEST

    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, serialize_by_alias=True
    )

    user_id: str = Field(min_length=1, max_length=255)
    #: The window: notifications created after `since` and up to `until` (the digest's due time).
    since: AwareDatetime
    until: AwareDatetime

    def wire(self) -> dict[str, Any]:
        return wire_form(self)


class InboxDigests:
    def __init__(
        self,
        *,
        db: Database,
        queue: QueueService,
        preferences: PreferencesService,
        renderer: Renderer,
        window: timedelta | None,
        locale: str,
    ) -> None:
        self.db = db
        self.queue = queue
        self.preferences = preferences
        self.renderer = renderer
        self.window = window
        self.locale = locale

    def register(self, registry: HandlerRegistry) -> None:
        registry.register(SEND_INBOX_DIGEST, self.send_digest, model=InboxDigestJob)

    async def notified(self, user_id: str) -> None:
        """A notification was created for `user_id`: arm their digest unless one is armed already."""
        if self.window is None or await self.preferences.digest_address(user_id) is None:
            return
        await self._arm(user_id, self.window)

    async def _arm(self, user_id: str, window: timedelta) -> None:
        now = utcnow()
        due = now + window
        armed_since = await self._set_due(user_id, due, first_since=now - window)
        if armed_since is None:
            return
        job = InboxDigestJob(user_id=user_id, since=armed_since, until=due)
        job_id = f"digest-{digest(user_id)}-{int(due.timestamp() * 1000)}"
        await self.queue.enqueue_job(NOTIFICATIONS_QUEUE, job, job_id=job_id, delay=window)

    async def _set_due(self, user_id: str, due: datetime, *, first_since: datetime) -> datetime | None:
        """Arm: the window's start (`covered_until`) when this call armed it, None when one was armed."""
        for _ in range(2):
            async with self.db.session(bounded=True) as session:
                row = await session.get(InboxDigest, user_id)
                if row is not None:
                    if row.due_at is not None:
                        return None
                    changed = await session.execute(
                        update(InboxDigest)
                        .where(InboxDigest.user_id == user_id, InboxDigest.due_at.is_(None))
                        .values(due_at=due, updated_at=utcnow())
                    )
                    armed = changed.rowcount == 1  # type: ignore[attr-defined]
                    return (row.covered_until or first_since) if armed else None
            try:
                async with self.db.session(bounded=True) as session:
                    session.add(InboxDigest(user_id=user_id, due_at=due, covered_until=first_since))
                return first_since
            except IntegrityError:
                continue  # another run inserted it: read it again
        return None

    async def send_digest(self, job: InboxDigestJob, context: JobContext) -> dict[str, Any]:
        async with self.db.session(bounded=True) as session:
            # Disarm (a retry finds it disarmed already: the window it carries is all it needs).
            await session.execute(
                update(InboxDigest)
                .where(InboxDigest.user_id == job.user_id, InboxDigest.due_at == job.until)
                .values(due_at=None, covered_until=job.until, updated_at=utcnow())
            )
            unread = list(
                await session.scalars(
                    select(Notification)
                    .where(
                        Notification.user_id == job.user_id,
                        Notification.read_at.is_(None),
                        Notification.created_at > job.since,
                        Notification.created_at <= job.until,
                    )
                    .order_by(Notification.id)
                    .limit(MAX_ITEMS + 1)
                )
            )
            later = await session.scalar(
                select(Notification.id).where(
                    Notification.user_id == job.user_id,
                    Notification.read_at.is_(None),
                    Notification.created_at > job.until,
                )
            )
        if later is not None and self.window is not None:
            await self._arm(job.user_id, self.window)
        if not unread:
            log.info("Digest for user %s not sent: every notification was read", job.user_id)
            return {"status": "cancelled", "reason": "READ"}
        address = await self.preferences.digest_address(job.user_id)
        if address is None:
            return {"status": "skipped", "reason": "NO_ADDRESS"}
        shown = unread[:MAX_ITEMS]
        message = self.renderer.render(
            TEMPLATE,
            self.locale,
            items=[{"title": n.title, "message": n.message} for n in shown],
            count=len(shown),
            more=len(unread) - len(shown),
        )
        key = f"digest:{job.user_id}:{job.until.isoformat()}"
        email = SendEmailJob(
            to=address,
            subject=message.subject,
            html=message.html,
            text=message.text,
            category=Category.TRANSACTIONAL.value,
            metadata=JobMetadata.model_validate(
                {"templateKey": TEMPLATE, "idempotencyKey": key, "userId": job.user_id}
            ),
        )
        result = await self.queue.enqueue_job(NOTIFICATIONS_QUEUE, email, job_id=f"{context.job_id}-email")
        return {"status": "queued", "items": len(shown), "jobId": result.job_id}
