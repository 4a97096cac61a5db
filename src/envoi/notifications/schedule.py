"""Scheduled messages in SQL (`scheduled_messages`): every delayed message is recorded before its job is
added to Redis, and every cancellation or replacement is recorded here first; the handler checks the row
before it sends. So a cancellation holds even when Redis could not be told.

    replace ─► SCHEDULED ──(handler: release)──► SENDING ──(sent)──► SENT
                   │      ▲                          │
                   │      └──(the send failed: give_back, before the retry)
                   ├──(cancel)─────────────────► CANCELLED
                   └──(replace of its group and kind)──► SUPERSEDED

Each change of a SCHEDULED row is one UPDATE `WHERE status = 'SCHEDULED'` checked by its row count: a
cancel and a handler racing on one row are ordered by the database, and exactly one of them wins. Either
the cancel (the handler then finds CANCELLED and does not send) or the handler (the cancel then reports
the row as sending). A send that fails gives the row back (SENDING -> SCHEDULED), so that SENDING means
in flight and a cancel made before the retry stops the retry. Replacing and cancelling a group take a per-group lock (PostgreSQL advisory lock;
SQLite serialises writers), so two requests for one appointment cannot leave two live reminders.

A job's row is named by `metadata.scheduleId`; the row id (a ULID) ends the job id too, so each
scheduling adds jobs of its own and never collides in Redis with one being removed or running.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import func, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from envoi.db.availability import or_unavailable
from envoi.db.models import ScheduledMessage, ScheduleStatus
from envoi.db.session import Database
from envoi.db.types import new_id, utcnow


@dataclass(frozen=True, slots=True)
class Slot:
    """A message to record in `group` (`appointment:apt-1`), of `kind` (`reminder-day`), due at `due_at`."""

    group: str
    kind: str
    id: str
    job_id: str
    due_at: datetime

    @classmethod
    def new(cls, group: str, kind: str, due_at: datetime, *, job_prefix: str) -> Slot:
        """`job_prefix` (`reminder-apt-1-day`) is followed by the row id: no `:` (Node BullMQ refuses it)."""
        id = new_id()
        return cls(group, kind, id, f"{job_prefix}-{id}", due_at)

    @property
    def message_key(self) -> str:
        """The ledger's key for this message (`metadata.idempotencyKey`): one row, one message."""
        return f"{self.group}:{self.kind}:{self.id}"


class Release(StrEnum):
    """What the handler may do with a scheduled job."""

    SEND = "SEND"
    CANCELLED = "CANCELLED"
    SUPERSEDED = "SUPERSEDED"
    #: No row: purged, or never recorded. Not sent: a cancellation cannot be checked.
    UNKNOWN = "UNKNOWN"


@dataclass(frozen=True, slots=True)
class ReplaceRecord:
    #: Job ids of the rows superseded now (they will not send).
    superseded: list[str]
    #: Job ids of rows of the replaced kinds that a handler holds (SENDING): they may be leaving now.
    sending: list[str]


@dataclass(frozen=True, slots=True)
class CancelRecord:
    #: The group has rows (it was scheduled through this table at some time).
    known: bool
    #: Job ids whose rows went SCHEDULED -> CANCELLED now.
    cancelled: list[str]
    #: Job ids a handler had already taken (SENDING): they may be leaving right now.
    sending: list[str]


class ScheduleBook:
    """`replace` and `cancel` raise `DatabaseUnavailableError` when the database does not answer (the
    request changed nothing); `release` and `mark_sent` run in handlers, where such an error is transient
    and the job is retried."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def replace(
        self, group: str, kinds: Collection[str] | None, slots: Sequence[Slot]
    ) -> ReplaceRecord:
        """Supersede the group's SCHEDULED rows of `kinds` (None: of every kind) and record `slots` as
        SCHEDULED, in one transaction. Says which jobs were superseded (to remove from Redis) and which
        a handler holds."""
        if any(slot.group != group for slot in slots):
            raise ValueError(f"every slot must belong to {group!r}")

        async def run() -> ReplaceRecord:
            now = utcnow()
            async with self.db.session() as session:
                await self._lock(session, group)
                which = ScheduledMessage.group_key == group
                if kinds is not None:
                    which = which & ScheduledMessage.kind.in_(list(kinds))
                superseded = await _transition(session, ScheduleStatus.SUPERSEDED, which)
                sending = await session.scalars(
                    select(ScheduledMessage.job_id).where(
                        which, ScheduledMessage.status == ScheduleStatus.SENDING
                    )
                )
                record = ReplaceRecord(superseded=superseded, sending=list(sending.all()))
                session.add_all(
                    ScheduledMessage(
                        id=slot.id,
                        group_key=group,
                        kind=slot.kind,
                        job_id=slot.job_id,
                        due_at=slot.due_at,
                        status=ScheduleStatus.SCHEDULED,
                        created_at=now,
                        updated_at=now,
                    )
                    for slot in slots
                )
            return record

        return await or_unavailable(run, what="the schedule could not be recorded (nothing was scheduled)")

    async def cancel(self, group: str) -> CancelRecord:
        """Cancel the group's SCHEDULED rows; report those a handler had already taken."""

        async def run() -> CancelRecord:
            async with self.db.session() as session:
                await self._lock(session, group)
                cancelled = await _transition(
                    session, ScheduleStatus.CANCELLED, ScheduledMessage.group_key == group
                )
                rows = (
                    await session.execute(
                        select(ScheduledMessage.job_id, ScheduledMessage.status).where(
                            ScheduledMessage.group_key == group
                        )
                    )
                ).all()
            sending = [row.job_id for row in rows if row.status == ScheduleStatus.SENDING]
            return CancelRecord(known=bool(rows), cancelled=cancelled, sending=sending)

        return await or_unavailable(
            run, what="the cancellation could not be recorded (nothing was cancelled)"
        )

    async def release(self, schedule_id: str) -> Release:
        """The handler's check before it sends: SCHEDULED -> SENDING wins the row. A row already SENDING
        or SENT is a retry of a job that won it (the ledger keeps it from leaving twice)."""
        taken = (
            update(ScheduledMessage)
            .where(ScheduledMessage.id == schedule_id, ScheduledMessage.status == ScheduleStatus.SCHEDULED)
            .values(status=ScheduleStatus.SENDING, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        async with self.db.session() as session:
            if cast("CursorResult[Any]", await session.execute(taken)).rowcount == 1:
                return Release.SEND
            status = await session.scalar(
                select(ScheduledMessage.status).where(ScheduledMessage.id == schedule_id)
            )
        if status is None:
            return Release.UNKNOWN
        if status in (ScheduleStatus.SENDING, ScheduleStatus.SENT):
            return Release.SEND
        return Release(status)

    async def mark_sent(self, schedule_id: str) -> None:
        await self._from_sending(schedule_id, ScheduleStatus.SENT)

    async def give_back(self, schedule_id: str) -> None:
        """The send failed (it will be retried, or dead-lettered): SENDING -> SCHEDULED, so that a cancel
        made before the retry wins over it."""
        await self._from_sending(schedule_id, ScheduleStatus.SCHEDULED)

    async def _from_sending(self, schedule_id: str, to: ScheduleStatus) -> None:
        statement = (
            update(ScheduledMessage)
            .where(ScheduledMessage.id == schedule_id, ScheduledMessage.status == ScheduleStatus.SENDING)
            .values(status=to, updated_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        async with self.db.session() as session:
            await session.execute(statement)

    async def rows(self, group: str) -> list[ScheduledMessage]:
        """The group's rows, oldest first."""
        async with self.db.session() as session:
            result = await session.scalars(
                select(ScheduledMessage)
                .where(ScheduledMessage.group_key == group)
                .order_by(ScheduledMessage.id)
            )
            return list(result.all())

    async def _lock(self, session: AsyncSession, group: str) -> None:
        """Serialise replace/cancel per group until the transaction ends. SQLite needs nothing: the
        first statement is a write, and SQLite lets one writer in at a time."""
        if self.db.dialect == "postgresql":
            await session.execute(select(func.pg_advisory_xact_lock(func.hashtext(group))))


async def _transition(session: AsyncSession, to: ScheduleStatus, where: Any) -> list[str]:
    """SCHEDULED -> `to` for the rows matching `where`; their job ids."""
    statement = (
        update(ScheduledMessage)
        .where(where, ScheduledMessage.status == ScheduleStatus.SCHEDULED)
        .values(status=to, updated_at=utcnow())
        .returning(ScheduledMessage.job_id)
        .execution_options(synchronize_session=False)
    )
    return list((await session.execute(statement)).scalars().all())
