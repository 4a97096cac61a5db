"""`DelayedMessages`: schedule, replace and cancel a group's delayed messages, SQL first, then Redis.

    replace: record the new rows and supersede the old (SQL) ─► remove the old jobs (Redis) ─► add the new
    cancel:  cancel the rows (SQL)                           ─► remove their jobs (Redis)

The SQL record is what decides: a job whose row is cancelled or superseded completes without sending,
whether or not Redis could be told to remove it. So each step after the first is best effort, and the
outcome says how far it got (`removed`: Redis confirmed; each new job's `EnqueueResult`: queued, or
dead-lettered with its due time when Redis is unavailable, since a delayed job is never run inline).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import timedelta

from envoi.db.types import utcnow
from envoi.notifications.schedule import ScheduleBook, Slot
from envoi.queue.base import EnqueueResult
from envoi.queue.jobs import JobPayload
from envoi.queue.names import NOTIFICATIONS_QUEUE
from envoi.queue.service import QueueService

#: A due time that passed while the request ran still makes a delayed job: a scheduled message is never
#: sent on the request path, inline.
MIN_DELAY = timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class Planned:
    slot: Slot
    job: JobPayload


@dataclass(frozen=True, slots=True)
class Scheduled:
    slot: Slot
    result: EnqueueResult

    @property
    def queued(self) -> bool:
        """In Redis, due at `slot.due_at`; otherwise dead-lettered (retry keeps the due time)."""
        return self.result.mode == "queued"


@dataclass(frozen=True, slots=True)
class Replacement:
    scheduled: list[Scheduled]
    #: Job ids of the rows this replaced (SUPERSEDED: they will not send).
    superseded: list[str]
    #: Job ids of messages of the replaced kinds that a worker was sending at that moment.
    sending: list[str]
    #: Redis confirmed that the replaced jobs are out of the queue (False: Redis unavailable; they stay
    #: until their time and complete without sending).
    removed: bool


@dataclass(frozen=True, slots=True)
class Cancellation:
    #: The group was ever scheduled through `scheduled_messages`.
    known: bool
    #: Job ids cancelled now (they will not send).
    cancelled: list[str]
    #: Job ids a handler had already taken when the cancel came: they may have left.
    sending: list[str]
    #: Redis confirmed that the cancelled jobs are out of the queue.
    removed: bool

    @property
    def complete(self) -> bool:
        """Nothing left to say: every pending message cancelled and out of Redis, none in flight."""
        return self.removed and not self.sending


class DelayedMessages:
    def __init__(self, *, book: ScheduleBook, queue: QueueService) -> None:
        self.book = book
        self.queue = queue

    async def replace(
        self,
        group: str,
        kinds: Collection[str] | None,
        planned: Sequence[Planned],
        *,
        legacy_job_ids: Sequence[str] = (),
    ) -> Replacement:
        """Schedule `planned` in place of the group's pending messages of `kinds` (None: of every kind;
        nothing planned: they are superseded all the same). `DatabaseUnavailableError` when nothing could
        be recorded."""
        record = await self.book.replace(group, kinds, [p.slot for p in planned])
        removed = await self.queue.discard(NOTIFICATIONS_QUEUE, [*record.superseded, *legacy_job_ids])
        scheduled = []
        for p in planned:
            delay = max(p.slot.due_at - utcnow(), MIN_DELAY)
            result = await self.queue.enqueue_job(
                NOTIFICATIONS_QUEUE, p.job, job_id=p.slot.job_id, delay=delay
            )
            scheduled.append(Scheduled(p.slot, result))
        return Replacement(
            scheduled=scheduled, superseded=record.superseded, sending=record.sending, removed=removed
        )

    async def cancel(self, group: str, *, legacy_job_ids: Sequence[str] = ()) -> Cancellation:
        """Cancel the group's pending messages. `DatabaseUnavailableError` when nothing was recorded."""
        record = await self.book.cancel(group)
        removed = await self.queue.discard(NOTIFICATIONS_QUEUE, [*record.cancelled, *legacy_job_ids])
        return Cancellation(
            known=record.known, cancelled=record.cancelled, sending=record.sending, removed=removed
        )
