"""The delivery ledger (`message_deliveries`): each message is claimed before it is sent, so it leaves once.

    claim ──► SENDING (lease) ──► send ──► mark_sent   ──► SENT (──► DELIVERED by the status webhook)
                                     └──► mark_failed ──► FAILED (claimable again by the job's retry)

A row is claimable when it is PENDING or FAILED, or SENDING under an expired lease (its worker died).
The claim is one conditional UPDATE checked by its row count, so two workers racing for the same key
cannot both win, on SQLite as on PostgreSQL. SENT, DELIVERED and CANCELLED are final: a job that finds
one completes without sending. A live lease held by another run raises `TransientDeliveryError`: the
job comes back after its backoff and finds the row SENT (or the lease expired).

Unlike the original system, a fresh PENDING row is claimed and sent: it skipped any PENDING row younger
than five minutes, which skipped the first send itself.

Keys (`delivery_key`): `metadata.idempotencyKey` when given; else `{templateKey}:{entity id}:{channel}:
{recipient}` when the metadata names a flow and an entity; else `job:{queue}:{jobId}`, stable across the
retries of one queued job.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.exc import IntegrityError

from envoi.db.models import DeliveryStatus, MessageDelivery
from envoi.db.session import Database
from envoi.db.types import utcnow
from envoi.errors import JobError, TransientDeliveryError
from envoi.masking import mask_recipient
from envoi.notifications.jobs import JobMetadata

log = logging.getLogger("envoi.deliveries")

#: A row in one of these is never sent again.
FINAL_STATUSES = frozenset({DeliveryStatus.SENT, DeliveryStatus.DELIVERED, DeliveryStatus.CANCELLED})
CLAIMABLE_STATUSES = (DeliveryStatus.PENDING, DeliveryStatus.FAILED)
#: Entity ids tried in this order for a derived key: the most specific first.
ENTITY_FIELDS = ("notification_id", "appointment_id")
FALLBACK_ENTITY_FIELDS = ("user_id", "organization_id")
KEY_MAX_LENGTH = 255
#: Bounds on what a provider's error may write into the row.
ERROR_CODE_MAX, ERROR_MESSAGE_MAX = 50, 2000
#: The column's length (`message_deliveries.template_key`).
TEMPLATE_KEY_MAX = 100


class IdempotencyKeyConflictError(JobError):
    """`metadata.idempotencyKey` names a message already claimed for another channel or recipient."""


def delivery_key(
    *, metadata: JobMetadata | None, channel: str, recipient: str, queue: str, job_id: str
) -> str:
    if metadata is not None and metadata.idempotency_key:
        return metadata.idempotency_key
    entity = _entity_id(metadata) if metadata is not None else None
    if metadata is not None and metadata.flow and entity:
        return _fit(f"{metadata.flow}:{entity}:{channel}:{recipient}")
    return _fit(f"job:{queue}:{job_id}")


def _entity_id(metadata: JobMetadata) -> str | None:
    for name in ENTITY_FIELDS:
        value = getattr(metadata, name)
        if value:
            return str(value)
    # Other ids a producer names (`invitationId`, `leadId`): more specific than the user.
    extras = metadata.model_extra or {}
    for name in sorted(extras):
        if name.endswith("Id") and isinstance(extras[name], str | int) and extras[name] != "":
            return str(extras[name])
    for name in FALLBACK_ENTITY_FIELDS:
        value = getattr(metadata, name)
        if value:
            return str(value)
    return None


def _fit(key: str) -> str:
    """A key longer than the column is replaced by its hash (still stable, still unique)."""
    if len(key) <= KEY_MAX_LENGTH:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Claim:
    delivery_id: str
    key: str
    #: SENDING when this run holds the row; otherwise the final status it found.
    status: DeliveryStatus
    #: This run's lease, which also fences `mark_failed` against a run that took the row over.
    lease_expires_at: datetime | None = None
    provider_message_id: str | None = None

    @property
    def acquired(self) -> bool:
        return self.status is DeliveryStatus.SENDING


class DeliveryLedger:
    def __init__(self, db: Database, *, lease_s: float) -> None:
        self.db = db
        self.lease = timedelta(seconds=lease_s)

    async def get(self, key: str) -> MessageDelivery | None:
        async with self.db.session() as session:
            row: MessageDelivery | None = await session.scalar(
                select(MessageDelivery).where(MessageDelivery.idempotency_key == key)
            )
            return row

    async def claim(
        self, *, key: str, channel: str, provider: str, recipient: str, template_key: str | None = None
    ) -> Claim:
        """Take the row for `key` (creating it), or say why not: a final status, or a live lease."""
        # Three rounds cover losing one insert race and one update race; more means a hot loop.
        for _ in range(3):
            row = await self.get(key)
            if row is None:
                claim = await self._insert(key, channel, provider, recipient, template_key)
                if claim is not None:
                    return claim
                continue  # another run inserted it first: read it back
            if row.channel != channel or row.recipient != recipient:
                raise IdempotencyKeyConflictError(
                    f"Idempotency key already used for another message ({row.channel} to "
                    f"{mask_recipient(row.recipient)})"
                )
            status = DeliveryStatus(row.status)
            if status in FINAL_STATUSES:
                return Claim(row.id, key, status, provider_message_id=row.provider_message_id)
            claim = await self._take(row.id, key)
            if claim is not None:
                return claim
            if status is DeliveryStatus.SENDING and row.lease_expires_at and row.lease_expires_at > utcnow():
                raise TransientDeliveryError(
                    f"Delivery {row.id} is being sent by another run (lease until "
                    f"{row.lease_expires_at.isoformat()})",
                    channel=channel,
                    code="LEASE_HELD",
                )
        raise TransientDeliveryError(f"Could not claim delivery {key!r}", channel=channel, code="CLAIM_RACE")

    async def _insert(
        self, key: str, channel: str, provider: str, recipient: str, template_key: str | None
    ) -> Claim | None:
        lease = utcnow() + self.lease
        row = _new_row(
            key,
            channel,
            provider,
            recipient,
            template_key,
            status=DeliveryStatus.SENDING,
            lease_expires_at=lease,
        )
        if not await self._insert_new(row):
            return None
        return Claim(row.id, key, DeliveryStatus.SENDING, lease_expires_at=lease)

    async def _take(self, delivery_id: str, key: str) -> Claim | None:
        now = utcnow()
        lease = now + self.lease
        claimable = MessageDelivery.status.in_(CLAIMABLE_STATUSES) | (
            (MessageDelivery.status == DeliveryStatus.SENDING) & (MessageDelivery.lease_expires_at < now)
        )
        statement = (
            update(MessageDelivery)
            .where(MessageDelivery.id == delivery_id, claimable)
            .values(status=DeliveryStatus.SENDING, lease_expires_at=lease, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        if not await self._execute(statement):
            return None
        return Claim(delivery_id, key, DeliveryStatus.SENDING, lease_expires_at=lease)

    async def mark_sent(self, claim: Claim, *, provider: str, provider_message_id: str | None) -> bool:
        """Record the send. Not fenced by the lease: the message left, whoever holds the row now."""
        now = utcnow()
        statement = (
            update(MessageDelivery)
            .where(
                MessageDelivery.id == claim.delivery_id,
                MessageDelivery.status.not_in((DeliveryStatus.SENT, DeliveryStatus.DELIVERED)),
            )
            .values(
                status=DeliveryStatus.SENT,
                provider=provider,
                provider_message_id=provider_message_id,
                sent_at=now,
                updated_at=now,
                lease_expires_at=None,
                error_code=None,
                error_message=None,
                attempts=MessageDelivery.attempts + 1,
            )
            .execution_options(synchronize_session=False)
        )
        return await self._execute(statement)

    async def mark_failed(self, claim: Claim, *, code: str | None, message: str) -> bool:
        """Record a failed attempt, unless another run took the row over after this one's lease ran out."""
        statement = (
            update(MessageDelivery)
            .where(
                MessageDelivery.id == claim.delivery_id,
                MessageDelivery.status == DeliveryStatus.SENDING,
                MessageDelivery.lease_expires_at == claim.lease_expires_at,
            )
            .values(
                status=DeliveryStatus.FAILED,
                error_code=(code or "UNKNOWN_ERROR")[:ERROR_CODE_MAX],
                error_message=message[:ERROR_MESSAGE_MAX],
                updated_at=utcnow(),
                lease_expires_at=None,
                attempts=MessageDelivery.attempts + 1,
            )
            .execution_options(synchronize_session=False)
        )
        return await self._execute(statement)

    async def cancel(
        self,
        *,
        key: str,
        channel: str,
        provider: str,
        recipient: str,
        template_key: str | None = None,
        reason: str,
        code: str = "CHANNEL_DISABLED",
    ) -> DeliveryStatus:
        """Record a message that will not be sent (its channel is disabled: CHANNEL_DISABLED; its schedule
        was cancelled or replaced: SCHEDULE_*). Returns the row's status: CANCELLED, or the final status
        an earlier run left (a SENT row stays SENT)."""
        row = _new_row(
            key,
            channel,
            provider,
            recipient,
            template_key,
            status=DeliveryStatus.CANCELLED,
            error_code=code[:ERROR_CODE_MAX],
            error_message=reason[:ERROR_MESSAGE_MAX],
        )
        if await self._insert_new(row):
            return DeliveryStatus.CANCELLED
        statement = (
            update(MessageDelivery)
            .where(MessageDelivery.idempotency_key == key, MessageDelivery.status.in_(CLAIMABLE_STATUSES))
            .values(status=DeliveryStatus.CANCELLED, error_code=code[:ERROR_CODE_MAX], updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        await self._execute(statement)
        existing = await self.get(key)
        return DeliveryStatus(existing.status) if existing else DeliveryStatus.CANCELLED

    async def _insert_new(self, row: MessageDelivery) -> bool:
        """Insert a row; False when its key exists already (another run inserted it first)."""
        try:
            async with self.db.session() as session:
                session.add(row)
        except IntegrityError:
            return False
        return True

    async def _execute(self, statement: Any) -> bool:
        """Run one UPDATE; True when it changed a row."""
        async with self.db.session() as session:
            result = cast("CursorResult[Any]", await session.execute(statement))
            return result.rowcount == 1


def _new_row(
    key: str, channel: str, provider: str, recipient: str, template_key: str | None, **fields: Any
) -> MessageDelivery:
    return MessageDelivery(
        idempotency_key=key,
        channel=channel,
        provider=provider,
        recipient=recipient,
        template_key=(template_key or None) and template_key[:TEMPLATE_KEY_MAX],
        attempts=0,
        **fields,
    )
