"""envoi's events: their types, their `data`, and the bus the rest of envoi emits them on.

    message.sent          the provider accepted an email, SMS or WhatsApp (ledger row SENT)
    message.delivered     the provider says it reached the recipient (a Twilio status callback)
    message.failed        final: no attempt left, a permanent error, or the provider's failed callback
    message.suppressed    not sent on purpose: its channel is disabled (ledger row CANCELLED), or the
                          recipient opted out of its category (SUPPRESSED)
    dead_letter.created   a job failed for the last time (a `failed_jobs` row)
    dead_letter.retried   a dead letter was enqueued again

`EventBus.emit()` never raises: an event that cannot be published is logged (its type, never its
data), and whatever emitted it carries on, since the message it describes has left already.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, or_, select

from envoi.db.models import DeliveryStatus, MessageDelivery, WebhookEvent
from envoi.db.session import Database
from envoi.masking import mask_recipient, mask_text
from envoi.queue.jobs import JobContext

log = logging.getLogger("envoi.webhooks")


class EventType(StrEnum):
    MESSAGE_SENT = "message.sent"
    MESSAGE_DELIVERED = "message.delivered"
    MESSAGE_FAILED = "message.failed"
    MESSAGE_SUPPRESSED = "message.suppressed"
    DEAD_LETTER_CREATED = "dead_letter.created"
    DEAD_LETTER_RETRIED = "dead_letter.retried"


#: What an endpoint may subscribe to.
EVENT_TYPES: tuple[str, ...] = tuple(event.value for event in EventType)
#: The type of "send a test event": sent to the endpoint asked, whatever it subscribes to.
TEST_EVENT = "webhook.test"

#: The ledger statuses a provider's status callback ends in, and the event each one publishes.
STATUS_EVENTS = {
    DeliveryStatus.DELIVERED: EventType.MESSAGE_DELIVERED,
    DeliveryStatus.UNDELIVERED: EventType.MESSAGE_FAILED,
}
#: The status a message event reports: the ledger's, except that a carrier's loss (UNDELIVERED in the
#: ledger) is reported as FAILED, like every other final failure (docs/webhooks.md).
EVENT_STATUS = {
    EventType.MESSAGE_SENT: DeliveryStatus.SENT,
    EventType.MESSAGE_DELIVERED: DeliveryStatus.DELIVERED,
    EventType.MESSAGE_FAILED: DeliveryStatus.FAILED,
    EventType.MESSAGE_SUPPRESSED: DeliveryStatus.CANCELLED,
}


def event_id_for(event_type: str, subject_id: str) -> str:
    """The stable id of an event about one delivery or dead letter: `evt_{subject}_{sent|...}`.
    Publishing it twice (a provider repeating its callback) then delivers it once. No `.` in it: the
    spec forbids dots in the id, which is part of the signed string."""
    return f"evt_{subject_id}_{event_type.rpartition('.')[2]}"


def message_data(
    *,
    delivery_id: str | None,
    channel: str,
    status: str,
    job_name: str | None,
    job_id: str | None,
    queue: str | None,
    recipient: str,
    provider_message_id: str | None = None,
    error: Mapping[str, Any] | None = None,
    metadata: Any = None,
) -> dict[str, Any]:
    """The `data` of a `message.*` event. The recipient is masked; `metadata` is the job's, as given."""
    return {
        "deliveryId": delivery_id,
        "channel": channel,
        "status": status,
        "queue": queue,
        "jobName": job_name,
        "jobId": job_id,
        "recipient": mask_recipient(recipient),
        "providerMessageId": provider_message_id,
        "error": (
            {"code": error.get("code"), "message": mask_text(str(error.get("message") or ""))}
            if error
            else None
        ),
        "metadata": metadata,
    }


def dead_letter_data(row: Mapping[str, Any]) -> dict[str, Any]:
    """The `data` of a `dead_letter.*` event, from a `failed_jobs` row's columns (snake_case keys).
    A thin payload: the job's metadata (as given) and masked recipient, never the message itself."""
    job_data = row.get("job_data")
    fields = job_data if isinstance(job_data, dict) else {}
    recipient = fields.get("to")
    return {
        "deadLetterId": row["id"],
        "queue": row["queue_name"],
        "jobName": row["job_name"],
        "jobId": row.get("job_id"),
        "status": row.get("status"),
        "attemptsMade": row.get("attempts_made"),
        "error": mask_text(str(row.get("error_message") or "")),
        "recipient": mask_recipient(recipient) if isinstance(recipient, str) else None,
        "retriedJobId": row.get("retried_job_id"),
        "metadata": fields.get("metadata"),
    }


Subscriber = Callable[[str, dict[str, Any]], Awaitable[object]]


class EventBus:
    """Where envoi's code says what happened; the webhook publisher subscribes (`envoi.webhooks.install`).
    With no subscriber, emitting costs nothing."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._subscribers: list[Subscriber] = []
        self._conditions: list[ColumnElement[bool] | None] = []
        self._interest: ColumnElement[bool] | None = None

    def subscribe(self, subscriber: Subscriber, *, acts_when: ColumnElement[bool] | None = None) -> None:
        """`acts_when`: a SQL condition false whenever the subscriber would do nothing with an event
        (the webhook publisher: no enabled endpoint), which a caller may read in a statement it runs
        anyway (`interest`); None: it may act on any event."""
        self._subscribers.append(subscriber)
        self._conditions.append(acts_when)
        # Built once: the same object each time lets SQLAlchemy reuse the statement asking it.
        conditions = [condition for condition in self._conditions if condition is not None]
        self._interest = None if len(conditions) < len(self._conditions) else or_(*conditions)

    @property
    def listened(self) -> bool:
        """Whether anything subscribes: a caller may skip the reads an event would need."""
        return bool(self._subscribers)

    @property
    def interest(self) -> ColumnElement[bool] | None:
        """A condition false when no subscriber would act on an event; None when that cannot be told
        in SQL (a subscriber without a condition) or nothing subscribes (emitting costs nothing)."""
        return self._interest

    async def emit(self, event_type: EventType, data: dict[str, Any]) -> None:
        for subscriber in self._subscribers:
            try:
                await subscriber(event_type.value, data)
            except Exception as exc:
                log.warning("Event %s not published (%s: %s)", event_type, type(exc).__name__, exc)

    async def emit_message(
        self,
        event_type: EventType,
        context: JobContext,
        channel: str,
        recipient: str,
        delivery_id: str,
        provider_message_id: str | None = None,
        error: Mapping[str, Any] | None = None,
        status: DeliveryStatus | None = None,
        interested: bool | None = None,
    ) -> None:
        """An event about one delivery made by a job, with the job's metadata as the producer gave it;
        `status` is the ledger's when the event type allows two (`message.suppressed`). `interested`:
        what `interest` read when the event happened (False: no subscriber would act, nothing is
        emitted; None: not read)."""
        if not self._subscribers or interested is False:
            return
        data = message_data(
            delivery_id=delivery_id,
            channel=channel,
            status=status or EVENT_STATUS[event_type],
            job_name=context.name,
            job_id=context.job_id,
            queue=context.queue,
            recipient=recipient,
            provider_message_id=provider_message_id,
            error=error,
            metadata=context.data.get("metadata"),
        )
        await self.emit(event_type, data)

    async def emit_delivery_status(self, provider_message_id: str) -> None:
        """After a provider's status callback moved ledger rows: `message.delivered` or `.failed` for
        each, with the job name, id and metadata of the `message.sent` event before it when envoi
        kept one (it keeps events while at least one endpoint exists)."""
        if not self._subscribers:
            return
        async with self.db.session() as session:
            rows = list(
                await session.scalars(
                    select(MessageDelivery).where(MessageDelivery.provider_message_id == provider_message_id)
                )
            )
            sent_ids = [event_id_for(EventType.MESSAGE_SENT, row.id) for row in rows]
            sent = {
                event.id: event.payload.get("data") or {}
                for event in await session.scalars(select(WebhookEvent).where(WebhookEvent.id.in_(sent_ids)))
            }
        for row in rows:
            event_type = STATUS_EVENTS.get(DeliveryStatus(row.status))
            if event_type is None:
                continue
            context = sent.get(event_id_for(EventType.MESSAGE_SENT, row.id), {})
            error = (
                {"code": row.error_code, "message": row.error_message}
                if event_type is EventType.MESSAGE_FAILED
                else None
            )
            data = message_data(
                delivery_id=row.id,
                channel=row.channel,
                status=EVENT_STATUS[event_type],
                job_name=context.get("jobName"),
                job_id=context.get("jobId"),
                queue=context.get("queue"),
                recipient=row.recipient,
                provider_message_id=provider_message_id,
                error=error,
                metadata=context.get("metadata"),
            )
            await self.emit(event_type, data)
