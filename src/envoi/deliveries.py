"""The delivery ledger (`message_deliveries`): each message is claimed before it is sent, so it leaves once.

    claim ──► SENDING (lease, renewed while the send runs) ──► send ──► mark_sent ──► SENT
                                                                  ├──► mark_failed ──► FAILED
                                                                  └──► release ──► PENDING (postponed)
    SENT ──► DELIVERED | UNDELIVERED       the provider's status callback (`apply_provider_status`)

Every move is one conditional UPDATE built from `TRANSITIONS`, the one table of what may follow what,
checked by its row count: two runs racing for the same row cannot both win, on SQLite as on PostgreSQL.
Only a failure before the provider accepted the message (FAILED) is sendable again; SENT, DELIVERED,
UNDELIVERED and CANCELLED are final, and a job that finds one completes without sending.

The lease follows the job: it is `Settings.delivery_lease_s` long (a quarter longer than the worker's
bullmq lock) and renewed while the send runs (`renewing`), as bullmq renews its lock. When bullmq
declares a dead worker's job stalled, that worker's lease is gone or about to go. A run that finds a
live lease raises `DeferredError(until=lease end)`: the job is postponed, its attempts untouched.

Keys (`delivery_key`): the producer's idempotency key when given; else `{flow}:{entity id}:{channel}:
{recipient}` when the job names a flow and an entity; else the job's own id, stable across the retries
of one job, with the job's creation time when the id is bullmq's counter (which restarts at 1 when Redis
loses its data): two distinct jobs never share a key.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal, cast

from sqlalchemy import ColumnElement, Insert, Update, bindparam, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult

from envoi.db.models import DeliveryStatus, MessageDelivery
from envoi.db.session import Database
from envoi.db.types import new_id, utcnow
from envoi.errors import DeferredError, JobError, TransientDeliveryError
from envoi.masking import mask_recipient

log = logging.getLogger("envoi.deliveries")

S = DeliveryStatus


class Move(StrEnum):
    CLAIM = "claim"
    RENEW = "renew"
    SENT = "sent"
    FAIL = "fail"
    CANCEL = "cancel"
    RELEASE = "release"
    SUPPRESS = "suppress"
    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"


@dataclass(frozen=True, slots=True)
class Transition:
    sources: frozenset[DeliveryStatus]
    target: DeliveryStatus
    #: For a SENDING source, whose lease: "expired" (its worker died), "own" (this run's, the fencing
    #: token), or "any".
    lease: Literal["any", "own", "expired"] = "any"


#: The ledger's rules, all of them: the statuses each move may start from, and where it lands.
TRANSITIONS: dict[Move, Transition] = {
    Move.CLAIM: Transition(frozenset({S.PENDING, S.FAILED, S.SENDING}), S.SENDING, lease="expired"),
    Move.RENEW: Transition(frozenset({S.SENDING}), S.SENDING, lease="own"),
    # Not fenced: the message left, whoever holds the row now; only a provider's verdict stays.
    Move.SENT: Transition(frozenset({S.PENDING, S.SENDING, S.FAILED, S.CANCELLED, S.SUPPRESSED}), S.SENT),
    Move.FAIL: Transition(frozenset({S.SENDING}), S.FAILED, lease="own"),
    Move.CANCEL: Transition(frozenset({S.PENDING, S.FAILED}), S.CANCELLED),
    # Postponed before anything left (a rate limit's slot too far away): not a failure, sendable again.
    Move.RELEASE: Transition(frozenset({S.SENDING}), S.PENDING, lease="own"),
    # The recipient's preferences: withheld as a cancel is, with its own status (docs/recipients.md).
    Move.SUPPRESS: Transition(frozenset({S.PENDING, S.FAILED}), S.SUPPRESSED),
    # A callback may overtake mark_sent (SENDING); "read" follows "delivered" (DELIVERED).
    Move.DELIVERED: Transition(frozenset({S.SENDING, S.SENT, S.DELIVERED}), S.DELIVERED),
    # Accepted, then lost by the carrier: final, never sent again (a resend could arrive twice).
    Move.UNDELIVERED: Transition(frozenset({S.SENDING, S.SENT}), S.UNDELIVERED),
}

#: A row in one of these is never sent again (nothing claims it).
FINAL_STATUSES = frozenset(S) - TRANSITIONS[Move.CLAIM].sources
#: Twilio's MessageStatus values that settle a message, and the move each one means.
PROVIDER_STATUSES = {
    "delivered": Move.DELIVERED,
    "read": Move.DELIVERED,
    "undelivered": Move.UNDELIVERED,
    "failed": Move.UNDELIVERED,
}
#: The statuses of messages envoi decided not to send (a channel off, a schedule cancelled, the
#: recipient's preferences), which the
#: admin page lists beside the dead letters.
NOT_SENT_STATUSES = (S.CANCELLED, S.SUPPRESSED)
KEY_MAX_LENGTH = 255
#: Bounds on what a provider's error may write into the row.
ERROR_CODE_MAX, ERROR_MESSAGE_MAX = 50, 2000
#: The column's length (`message_deliveries.template_key`).
TEMPLATE_KEY_MAX = 100
#: A lease is renewed this many times per lease length.
RENEWALS_PER_LEASE = 3


class IdempotencyKeyConflictError(JobError):
    """An idempotency key names a message already claimed for another channel or recipient."""


def delivery_key(
    *,
    channel: str,
    recipient: str,
    queue: str,
    job_id: str,
    created_at_ms: int,
    idempotency_key: str | None = None,
    flow: str | None = None,
    entity_id: str | None = None,
) -> str:
    if idempotency_key:
        return idempotency_key
    if flow and entity_id:
        return _fit(f"{flow}:{entity_id}:{channel}:{recipient}")
    if job_id.isdigit():
        # bullmq's own counter: job 1 after Redis lost its data is not the job 1 of before.
        return _fit(f"job:{queue}:{job_id}:{created_at_ms}")
    # A producer's id (bullmq refuses integer custom ids) names its message, like an idempotency key.
    return _fit(f"job:{queue}:{job_id}")


def _fit(key: str) -> str:
    """A key longer than the column is replaced by its hash (still stable, still unique)."""
    if len(key) <= KEY_MAX_LENGTH:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


@dataclass(slots=True)
class Claim:
    delivery_id: str
    key: str
    #: SENDING when this run holds the row; otherwise the final status it found.
    status: DeliveryStatus
    #: This run's lease end, moved forward by each renewal; also the fencing token of `mark_failed`.
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
        async with self.db.session(bounded=True) as session:
            row: MessageDelivery | None = await session.scalar(
                select(MessageDelivery).where(MessageDelivery.idempotency_key == key)
            )
            return row

    async def latest(self, statuses: tuple[DeliveryStatus, ...], *, limit: int) -> list[MessageDelivery]:
        """The rows in these statuses, last changed first."""
        async with self.db.session(bounded=True) as session:
            query = (
                select(MessageDelivery)
                .where(MessageDelivery.status.in_([str(status) for status in statuses]))
                .order_by(MessageDelivery.updated_at.desc(), MessageDelivery.id.desc())
                .limit(limit)
            )
            return list(await session.scalars(query))

    async def claim(
        self, *, key: str, channel: str, provider: str, recipient: str, template_key: str | None = None
    ) -> Claim:
        """Take the row for `key` (creating it), or say why not: a final status returned, a live lease
        raised as `DeferredError` (come back when it ends)."""
        # Three rounds cover losing one insert race and one update race; more means a hot loop.
        for _ in range(3):
            lease = utcnow() + self.lease
            # A new message (the common case) costs one statement: the insert that claims it.
            values = _row(
                key, channel, provider, recipient, template_key, status=S.SENDING, lease_expires_at=lease
            )
            if await self._insert_new(values):
                return Claim(values["id"], key, DeliveryStatus.SENDING, lease_expires_at=lease)
            row = await self.get(key)
            if row is None:
                continue  # deleted since the insert failed: insert again
            if row.channel != channel or row.recipient != recipient:
                raise IdempotencyKeyConflictError(
                    f"Idempotency key already used for another message ({row.channel} to "
                    f"{mask_recipient(row.recipient)})"
                )
            status = DeliveryStatus(row.status)
            if status in FINAL_STATUSES:
                return Claim(row.id, key, status, provider_message_id=row.provider_message_id)
            lease = utcnow() + self.lease
            if await self._move(Move.CLAIM, row.id, lease_expires_at=lease):
                return Claim(row.id, key, DeliveryStatus.SENDING, lease_expires_at=lease)
            if status is DeliveryStatus.SENDING and row.lease_expires_at and row.lease_expires_at > utcnow():
                raise DeferredError(
                    f"Delivery {row.id} is being sent by another run (lease until "
                    f"{row.lease_expires_at.isoformat()})",
                    until=row.lease_expires_at,
                )
        raise TransientDeliveryError(f"Could not claim delivery {key!r}", channel=channel, code="CLAIM_RACE")

    async def renew(self, claim: Claim) -> bool:
        """Push this run's lease forward; False when the row is no longer this run's."""
        lease = utcnow() + self.lease
        renewed = await self._move(
            Move.RENEW, claim.delivery_id, token=claim.lease_expires_at, lease_expires_at=lease
        )
        if renewed:
            claim.lease_expires_at = lease
        return renewed

    @contextlib.asynccontextmanager
    async def renewing(self, claim: Claim) -> AsyncIterator[Claim]:
        """Keep `claim`'s lease alive while the block runs (the send); stop renewing before leaving, so
        that `mark_sent`/`mark_failed` afterwards see the lease as last written."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        renewals: list[asyncio.Task[None]] = []
        interval = self.lease.total_seconds() / RENEWALS_PER_LEASE

        def start() -> None:
            name = f"envoi-lease-{claim.delivery_id}"
            renewals.append(loop.create_task(self._renew_until(claim, stop, interval), name=name))

        # Most sends end before the first renewal is due: no task for them, only a timer.
        timer = loop.call_later(interval, start)
        try:
            yield claim
        finally:
            timer.cancel()
            stop.set()
            # A renewal in flight finishes (its new lease recorded); one stuck on the database does not
            # hold the job past the session bound.
            for task in renewals:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, timeout=self.db.unit_timeout_s)

    async def _renew_until(self, claim: Claim, stop: asyncio.Event, interval: float) -> None:
        while not stop.is_set():
            try:
                if not await self.renew(claim):
                    log.warning("Delivery %s: lease lost to another run during the send", claim.delivery_id)
                    return
            except Exception as exc:
                # The next round tries again; the lease has RENEWALS_PER_LEASE rounds of slack.
                log.warning("Delivery %s: could not renew the lease: %s", claim.delivery_id, exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)

    async def mark_sent(self, claim: Claim, *, provider: str, provider_message_id: str | None) -> bool:
        """Record the send. Not fenced by the lease: the message left, whoever holds the row now."""
        moved, _ = await self.mark_sent_asking(
            claim, provider=provider, provider_message_id=provider_message_id, ask=None
        )
        return moved

    async def mark_sent_asking(
        self,
        claim: Claim,
        *,
        provider: str,
        provider_message_id: str | None,
        ask: ColumnElement[bool] | None,
    ) -> tuple[bool, bool | None]:
        """`mark_sent`, and the value of `ask` (a condition on other tables) read by the same statement,
        in the same snapshot as the move: (moved, answer). The answer is None when the row did not move
        or nothing was asked. The handlers ask whether anything listens to `message.sent` (an enabled
        webhook endpoint) without a statement of its own."""
        values: dict[str, Any] = {
            "provider": provider,
            "provider_message_id": provider_message_id,
            "sent_at": utcnow(),
            "lease_expires_at": None,
            "error_code": None,
            "error_message": None,
        }
        if ask is None:
            return await self._move(Move.SENT, claim.delivery_id, count_attempt=True, **values), None
        statement = _asking_statement(tuple(sorted(values)), ask)
        async with self.db.connection(bounded=True) as connection:
            row = (
                await connection.execute(statement, _update_params(claim.delivery_id, None, values))
            ).first()
        return (False, None) if row is None else (True, bool(row.answer))

    async def mark_failed(self, claim: Claim, *, code: str | None, message: str) -> bool:
        """Record a failed attempt, unless another run took the row over after this one's lease ran out."""
        return await self._move(
            Move.FAIL,
            claim.delivery_id,
            token=claim.lease_expires_at,
            error_code=(code or "UNKNOWN_ERROR")[:ERROR_CODE_MAX],
            error_message=message[:ERROR_MESSAGE_MAX],
            lease_expires_at=None,
            count_attempt=True,
        )

    async def release(self, claim: Claim) -> bool:
        """Give the row back untouched by this run (PENDING, no lease): the job was postponed before its
        message left (`DeferredError`), unless another run took the row over meanwhile."""
        return await self._move(
            Move.RELEASE, claim.delivery_id, token=claim.lease_expires_at, lease_expires_at=None
        )

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
        move: Literal[Move.CANCEL, Move.SUPPRESS] = Move.CANCEL,
    ) -> DeliveryStatus:
        """Record a message that will not be sent (its channel is disabled: CHANNEL_DISABLED; its schedule
        was cancelled or replaced: SCHEDULE_*; with `Move.SUPPRESS`, the recipient opted out:
        RECIPIENT_OPTED_OUT). Returns the row's status: CANCELLED (SUPPRESSED), or the final status an
        earlier run left (a SENT row stays SENT)."""
        target = TRANSITIONS[move].target
        row = _row(
            key,
            channel,
            provider,
            recipient,
            template_key,
            status=target,
            error_code=code[:ERROR_CODE_MAX],
            error_message=reason[:ERROR_MESSAGE_MAX],
        )
        if await self._insert_new(row):
            return target
        existing = await self.get(key)
        if existing is None:
            return target
        await self._move(
            move, existing.id, error_code=code[:ERROR_CODE_MAX], error_message=reason[:ERROR_MESSAGE_MAX]
        )
        existing = await self.get(key)
        return DeliveryStatus(existing.status) if existing else target

    async def apply_provider_status(
        self, *, provider_message_id: str, status: str, error_code: str | None
    ) -> int:
        """A provider's verdict on a sent message (Twilio's status callback). Returns the rows changed:
        intermediate statuses (queued, sending, sent) change nothing; a verdict never overturns another
        (callbacks may arrive out of order)."""
        move = PROVIDER_STATUSES.get(status.lower())
        if move is None:
            return 0
        values: dict[str, Any] = {}
        if move is Move.UNDELIVERED:
            values["error_code"] = (error_code or status.upper())[:ERROR_CODE_MAX]
            values["error_message"] = f"Provider status {status}" + (
                f" (error {error_code})" if error_code else ""
            )
        return await self._update(move, "provider_message_id", provider_message_id, None, **values)

    async def _move(
        self, move: Move, delivery_id: str, *, token: datetime | None = None, **values: Any
    ) -> bool:
        """Apply one transition of `TRANSITIONS` to one row; True when it happened."""
        return await self._update(move, "id", delivery_id, token, **values) == 1

    async def _update(self, move: Move, by: Column, key: str, token: datetime | None, **values: Any) -> int:
        count = bool(values.pop("count_attempt", False))
        statement = _update_statement(move, by, tuple(sorted(values)), count)
        async with self.db.connection(bounded=True) as connection:
            result = cast(
                "CursorResult[Any]", await connection.execute(statement, _update_params(key, token, values))
            )
            return int(result.rowcount or 0)

    async def _insert_new(self, values: dict[str, Any]) -> bool:
        """Insert a row; False when its key exists already (another run inserted it first). ON CONFLICT
        DO NOTHING, which SQLite and PostgreSQL both speak: a retry costs no error in the server's log."""
        statement = _insert_statement(self.db.dialect, tuple(sorted(values)))
        async with self.db.connection(bounded=True) as connection:
            return (await connection.execute(statement, values)).first() is not None


Column = Literal["id", "provider_message_id"]


@functools.cache
def _update_statement(move: Move, by: Column, columns: tuple[str, ...], count_attempt: bool) -> Update:
    """One UPDATE per shape, built once (building a statement costs more than running it), with the
    parameters `b_key` (the row), `b_now`, `b_token` (the lease), and `v_<column>`."""
    target = MessageDelivery.id if by == "id" else MessageDelivery.provider_message_id
    values: dict[str, Any] = {name: bindparam(f"v_{name}") for name in (*columns, "updated_at")}
    values["status"] = TRANSITIONS[move].target.value
    if count_attempt:
        values["attempts"] = MessageDelivery.attempts + 1
    return (
        update(MessageDelivery)
        .where(target == bindparam("b_key"), _allowed(move, bindparam("b_now"), bindparam("b_token")))
        .values(values)
    )


def _update_params(key: str, token: datetime | None, values: dict[str, Any]) -> dict[str, Any]:
    """The parameters of an `_update_statement` (or a statement built on one) for one row, now."""
    now = utcnow()
    params = {"b_key": key, "b_now": now, "b_token": token, "v_updated_at": now}
    params.update({f"v_{name}": value for name, value in values.items()})
    return params


@functools.lru_cache(maxsize=16)  # bounded: a process building many runtimes has one question each
def _asking_statement(columns: tuple[str, ...], ask: ColumnElement[bool]) -> Update:
    """The SENT move returning `ask` as `answer`, built once per question (the event bus keeps one
    object per condition): SQLAlchemy computes a new statement's cache key on each execution."""
    return _update_statement(Move.SENT, "id", columns, True).returning(ask.label("answer"))


@functools.cache
def _insert_statement(dialect: str, columns: tuple[str, ...]) -> Insert:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(MessageDelivery)
        .values({name: bindparam(name) for name in columns})
        .on_conflict_do_nothing(index_elements=["idempotency_key"])
        # RETURNING, not the row count: psycopg reports -1 for this statement.
        .returning(MessageDelivery.id)
    )


def _allowed(move: Move, now: ColumnElement[Any], token: ColumnElement[Any]) -> ColumnElement[bool]:
    """The WHERE clause of `move`: the row's status is one of its sources (and the lease as it says)."""
    transition = TRANSITIONS[move]
    status = MessageDelivery.status
    clauses: list[ColumnElement[bool]] = []
    others = sorted(transition.sources - {S.SENDING})
    if others:
        clauses.append(status.in_(others))
    if S.SENDING in transition.sources:
        sending: ColumnElement[bool] = status == S.SENDING
        if transition.lease == "expired":
            sending = sending & (MessageDelivery.lease_expires_at < now)
        elif transition.lease == "own":
            sending = sending & (MessageDelivery.lease_expires_at == token)
        clauses.append(sending)
    return or_(*clauses)


def _row(
    key: str, channel: str, provider: str, recipient: str, template_key: str | None, **fields: Any
) -> dict[str, Any]:
    now = utcnow()
    return {
        "id": new_id(),
        "idempotency_key": key,
        "channel": channel,
        "provider": provider,
        "recipient": recipient,
        "template_key": (template_key or None) and template_key[:TEMPLATE_KEY_MAX],
        "attempts": 0,
        "created_at": now,
        "updated_at": now,
        **fields,
    }
