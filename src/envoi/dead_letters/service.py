"""`FailedJobService`: read, retry, delete and count dead letters. Used by `envoi dlq`, the admin API,
the /metrics gauges (`count_by_status`) and the admin chart (`per_hour`); `newest_id` and
`summary_since` are the queries dead-letter alerts need. (Recording a failure is `recorder`'s; the
reconciler checks which failures already have a row.)

Pages are newest first, keyed on the ULID primary key (sortable by creation time): the cursor is the
last id of a page, so a page costs one index range scan whatever its depth. Filtered pages use the
composite indexes (queue_name, id), (job_name, id) and (status, id).

Retry is claimed before it enqueues: a conditional UPDATE moves the row FAILED -> RETRIED, and only the
caller whose UPDATE changed it enqueues, with the job id `dlq-retry-{row id}`. Two retries of one row
therefore enqueue once; if the process dies between the claim and the enqueue the row says RETRIED with
no job behind it, and `retry(id, force=True)` enqueues it again (the same job id: bullmq ignores the add
if that job does exist).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Select, delete, func, select, tuple_, update

from envoi import metrics
from envoi.db.models import FailedJob, FailedJobStatus
from envoi.db.session import Database
from envoi.db.types import utcnow
from envoi.dead_letters.filters import FailedJobFilters, parse_status
from envoi.dead_letters.results import (
    BulkRetry,
    DeadLetterStats,
    DeadLetterSummary,
    Page,
    RetryOutcome,
    RetryResult,
)
from envoi.errors import EnvoiError, InvalidJobDataError
from envoi.events import EventBus, EventType, dead_letter_data
from envoi.masking import mask_dead_letter
from envoi.queue.service import QueueService

log = logging.getLogger("envoi.dead_letters")

__all__ = [
    "BulkRetry",
    "DeadLetterStats",
    "DeadLetterSummary",
    "FailedJobFilters",
    "FailedJobNotFoundError",
    "FailedJobNotResolvableError",
    "FailedJobNotRetryableError",
    "FailedJobService",
    "Page",
    "RetryOutcome",
    "RetryResult",
    "parse_status",
    "row_as_dict",
]

MAX_LIMIT = 500
#: Rows read or changed per statement in bulk operations.
BATCH_SIZE = 500
#: Hours in `per_hour`'s histogram (the admin page's chart: the last day).
HISTOGRAM_HOURS = 24
_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
#: Options a retry keeps; the old job id is dropped (bullmq would ignore an add under it).
RETRY_OPTIONS = ("attempts", "backoff", "priority", "lifo", "removeOnComplete")

Progress = Callable[[int], None]
#: A module-level name: inside the class, `list` is the method.
Rows = list[FailedJob]
#: (start of the hour, dead letters created in it); a module-level name because the class has a `list`.
HourCounts = list[tuple[datetime, int]]


class FailedJobNotFoundError(EnvoiError):
    def __init__(self, failed_job_id: str) -> None:
        super().__init__(f"No dead letter with id {failed_job_id}")
        self.failed_job_id = failed_job_id


class FailedJobNotRetryableError(EnvoiError):
    """The row was already retried (or resolved): retrying again would deliver twice."""

    def __init__(self, failed_job_id: str, status: str) -> None:
        super().__init__(f"Dead letter {failed_job_id} is {status}, not FAILED: not retried again")
        self.failed_job_id = failed_job_id
        self.status = status


def row_as_dict(row: FailedJob, *, reveal: bool = False) -> dict[str, Any]:
    """A JSON-ready dead letter, as shown to a person: recipients masked (in the payload, the error and
    the stack traces, `mask_dead_letter`) unless `reveal`."""
    fields = {
        "id": row.id,
        "queue_name": row.queue_name,
        "job_name": row.job_name,
        "job_id": row.job_id,
        "job_data": row.job_data,
        "job_options": row.job_options,
        "error_message": row.error_message,
        "stacktrace": row.stacktrace,
        "attempts_made": row.attempts_made,
        "status": row.status,
        "retried_job_id": row.retried_job_id,
        "finished_on": row.finished_on,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }
    return fields if reveal else mask_dead_letter(fields)


def retry_options(row: FailedJob) -> tuple[dict[str, Any], float | None]:
    """The options a retry is enqueued with, and its delay in seconds.

    A job that failed inline before its delay was up (a reminder, with Redis down) keeps its due time;
    any other job runs at once.
    """
    options = {key: row.job_options[key] for key in RETRY_OPTIONS if key in row.job_options}
    delay_ms = row.job_options.get("delay")
    remaining: float | None = None
    if delay_ms:
        due = row.created_at + timedelta(milliseconds=int(delay_ms))
        remaining = max((due - utcnow()).total_seconds(), 0) or None
    return options, remaining


def retry_job_id(row_id: str) -> str:
    return f"dlq-retry-{row_id}"


class FailedJobNotResolvableError(EnvoiError):
    """The row was RETRIED: its job was enqueued again, there is nothing left to resolve by hand."""

    def __init__(self, failed_job_id: str, status: str) -> None:
        super().__init__(
            f"Dead letter {failed_job_id} is {status}: only a FAILED dead letter can be resolved"
        )
        self.failed_job_id = failed_job_id
        self.status = status


def failed_on_invalid_data(row: FailedJob) -> bool:
    """The job failed because its data did not validate (`InvalidJobDataError`): retrying the same data
    fails again, unless the code changed since."""
    return row.error_message.startswith(InvalidJobDataError.PREFIX)


class FailedJobService:
    """Dead letters over `db`. `queue` is needed by `retry` and `retry_many` alone (the `envoi dlq`
    commands that read and delete need no Redis and no handlers: `FailedJobService(db=database)`)."""

    def __init__(
        self, *, db: Database, queue: QueueService | None = None, events: EventBus | None = None
    ) -> None:
        self.db = db
        self.queue = queue
        #: Told of each retry (`dead_letter.retried`), when given.
        self.events = events

    async def list(
        self,
        *,
        queue_name: str | None = None,
        job_name: str | None = None,
        status: str | FailedJobStatus | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        search: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        filters = FailedJobFilters(
            queue_name=queue_name,
            job_name=job_name,
            status=parse_status(status),
            since=since,
            until=until,
            search=search,
        )
        return await self.page(filters, limit=limit, cursor=cursor)

    async def page(self, filters: FailedJobFilters, *, limit: int = 50, cursor: str | None = None) -> Page:
        if not 1 <= limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}")
        if cursor is not None and not _ULID.match(cursor):
            raise ValueError("invalid cursor")
        statement = self.page_query(filters, limit=limit, cursor=cursor)
        async with self.db.session() as session:
            rows = list((await session.scalars(statement)).all())
        more = len(rows) > limit
        items = rows[:limit]
        return Page(items=items, next_cursor=items[-1].id if more else None)

    def page_query(
        self, filters: FailedJobFilters, *, limit: int, cursor: str | None = None
    ) -> Select[FailedJob]:
        """The SELECT behind `page` (one row more than `limit`, to know whether another page follows)."""
        statement = select(FailedJob).where(*filters.clauses())
        if cursor is not None:
            statement = statement.where(FailedJob.id < cursor)
        return statement.order_by(FailedJob.id.desc()).limit(limit + 1)

    async def get(self, id: str) -> FailedJob | None:
        async with self.db.session() as session:
            return await session.get(FailedJob, id)

    async def count(self, filters: FailedJobFilters) -> int:
        statement = select(func.count()).select_from(FailedJob).where(*filters.clauses())
        async with self.db.session() as session:
            return int((await session.execute(statement)).scalar_one())

    async def delete(self, id: str) -> bool:
        async with self.db.session() as session:
            result = await session.execute(delete(FailedJob).where(FailedJob.id == id))
        return _rowcount(result) > 0

    async def delete_many(self, filters: FailedJobFilters, *, progress: Progress | None = None) -> int:
        """Delete every matching row, in batches (short transactions; `progress(n)` after each)."""
        deleted = 0
        while True:
            async with self.db.session() as session:
                ids = list((await session.scalars(self._ids(filters, None).limit(BATCH_SIZE))).all())
                if not ids:
                    return deleted
                result = await session.execute(delete(FailedJob).where(FailedJob.id.in_(ids)))
            deleted += _rowcount(result)
            if progress:
                progress(len(ids))

    def _ids(self, filters: FailedJobFilters, cursor: str | None) -> Select[str]:
        statement = select(FailedJob.id).where(*filters.clauses())
        if cursor is not None:
            statement = statement.where(FailedJob.id < cursor)
        return statement.order_by(FailedJob.id.desc())

    async def retry(self, id: str, *, force: bool = False) -> RetryOutcome:
        """Enqueue the job again (fresh job id, fresh attempts) and mark the row RETRIED.

        Returns what happened (`RetryOutcome.result`): queued in Redis, or run inline (no queue, or Redis
        down) and delivered, or run inline and failed again, in which case `new_dead_letter` is the row
        that run left. Raises `FailedJobNotFoundError`, or `FailedJobNotRetryableError` when the row is not
        FAILED (with `force`, a RETRIED row is enqueued again under the same job id), or `ValueError` for
        a queue envoi does not know (the row is left FAILED), or `TypeError` when the service was built
        without a queue.
        """
        if self.queue is None:
            raise TypeError("FailedJobService.retry needs a queue: FailedJobService(db=..., queue=...)")
        job_id = retry_job_id(id)
        claimable = [FailedJobStatus.FAILED.value]
        if force:
            claimable.append(FailedJobStatus.RETRIED.value)
        async with self.db.session() as session:
            claim = (
                update(FailedJob)
                .where(FailedJob.id == id, FailedJob.status.in_(claimable))
                .values(status=FailedJobStatus.RETRIED.value, retried_job_id=job_id, updated_at=utcnow())
            )
            claimed = _rowcount(await session.execute(claim)) == 1
            row = await session.get(FailedJob, id, populate_existing=True)
        if row is None:
            raise FailedJobNotFoundError(id)
        if not claimed:
            raise FailedJobNotRetryableError(id, row.status)
        options, delay = retry_options(row)
        data = row.job_data if isinstance(row.job_data, dict) else {"value": row.job_data}
        started = utcnow()
        try:
            enqueued = await self.queue.enqueue(
                row.queue_name, row.job_name, data, job_id=job_id, delay=delay, **options
            )
        except BaseException:
            # Nothing was enqueued (a bad queue name, a cancelled call): give the row back.
            await self._unclaim(id, job_id)
            raise
        metrics.JOBS_RETRIED.labels(row.queue_name, row.job_name).inc()
        outcome = RetryOutcome(row=row, enqueued=enqueued)
        if outcome.failed_again:
            new = await self._left_by_inline_run(row, data, since=started)
            outcome = RetryOutcome(row=row, enqueued=enqueued, new_dead_letter=new)
        if self.events is not None and not outcome.failed_again:
            await self.events.emit(
                EventType.DEAD_LETTER_RETRIED, dead_letter_data(row_as_dict(row, reveal=True))
            )
        return outcome

    async def _left_by_inline_run(
        self, row: FailedJob, data: dict[str, Any], *, since: datetime
    ) -> FailedJob | None:
        """The dead letter an inline run of `row`'s job recorded after `since`. Inline failures carry no
        job id, so it is found by queue, job name, payload and time (the oldest such row: of two
        identical jobs failing inline at the same instant, either is the answer)."""
        statement = (
            select(FailedJob)
            .where(
                FailedJob.created_at >= since,
                FailedJob.queue_name == row.queue_name,
                FailedJob.job_name == row.job_name,
                FailedJob.job_id.is_(None),
                FailedJob.id != row.id,
            )
            .order_by(FailedJob.id)
            .limit(BATCH_SIZE)
        )
        async with self.db.session() as session:
            candidates = (await session.scalars(statement)).all()
        return next((found for found in candidates if found.job_data == data), None)

    async def _unclaim(self, id: str, job_id: str) -> None:
        async with self.db.session() as session:
            await session.execute(
                update(FailedJob)
                .where(FailedJob.id == id, FailedJob.retried_job_id == job_id)
                .values(status=FailedJobStatus.FAILED.value, retried_job_id=None, updated_at=utcnow())
            )

    async def retry_many(self, filters: FailedJobFilters, *, progress: Progress | None = None) -> BulkRetry:
        """Retry every matching FAILED row (rows in another status are skipped); says how each went."""
        done = BulkRetry()
        if filters.status not in (None, FailedJobStatus.FAILED):
            return done
        failed_only = filters.with_status(FailedJobStatus.FAILED)
        cursor = None
        while True:
            async with self.db.session() as session:
                ids = list((await session.scalars(self._ids(failed_only, cursor).limit(BATCH_SIZE))).all())
            if not ids:
                return done
            for row_id in ids:
                try:
                    done.add(await self.retry(row_id))
                except (FailedJobNotFoundError, FailedJobNotRetryableError):
                    pass  # deleted or retried by someone else since the page was read
                except ValueError as exc:  # a queue envoi does not serve: the row stays FAILED
                    log.warning("Dead letter %s not retried: %s", row_id, exc)
            cursor = ids[-1]
            if progress:
                progress(len(ids))

    async def stats(self) -> DeadLetterStats:
        statement = select(FailedJob.queue_name, FailedJob.job_name, FailedJob.status, func.count()).group_by(
            FailedJob.queue_name, FailedJob.job_name, FailedJob.status
        )
        by_queue: dict[str, int] = {}
        by_job_name: dict[str, int] = {}
        by_status: dict[str, int] = dict.fromkeys((s.value for s in FailedJobStatus), 0)
        total = 0
        async with self.db.session() as session:
            for queue_name, job_name, status, count in await session.execute(statement):
                total += count
                by_queue[queue_name] = by_queue.get(queue_name, 0) + count
                by_job_name[job_name] = by_job_name.get(job_name, 0) + count
                by_status[status] = by_status.get(status, 0) + count
        return DeadLetterStats(total=total, by_queue=by_queue, by_job_name=by_job_name, by_status=by_status)

    async def count_by_status(self) -> dict[str, int]:
        """Dead letters per status, for the statuses that have any (the `envoi_dead_letters` gauge)."""
        statement = select(FailedJob.status, func.count()).group_by(FailedJob.status)
        async with self.db.session() as session:
            rows = await session.execute(statement)
            return {str(status): int(count) for status, count in rows.all()}

    async def per_hour(self, *, now: datetime | None = None, hours: int = HISTOGRAM_HOURS) -> HourCounts:
        """`hours` buckets ending with the current hour, oldest first: each the start of an hour (UTC)
        and the number of dead letters created in it."""
        end = (now or utcnow()).replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        start = end - timedelta(hours=hours)
        buckets = {start + timedelta(hours=i): 0 for i in range(hours)}
        statement = select(FailedJob.created_at).where(FailedJob.created_at >= start)
        async with self.db.session() as session:
            for moment in await session.scalars(statement):
                hour = moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
                if hour in buckets:
                    buckets[hour] += 1
        return sorted(buckets.items())

    async def newest_id(self) -> str:
        """The id of the newest dead letter, "" when there is none. Ids are ULIDs: they sort by creation
        time, so "newer than this id" is what `summary_since` counts."""
        async with self.db.session() as session:
            return str(await session.scalar(select(func.max(FailedJob.id))) or "")

    async def summary_since(self, last_id: str) -> DeadLetterSummary:
        """The dead letters with an id greater than `last_id` ("" for all of them), counted by queue
        and by job name; `last_id` of the answer is the newest of them (or "" when there are none)."""
        statement = (
            select(FailedJob.queue_name, FailedJob.job_name, func.count(), func.max(FailedJob.id))
            .where(FailedJob.id > last_id)
            .group_by(FailedJob.queue_name, FailedJob.job_name)
        )
        total, newest = 0, ""
        by_queue: dict[str, int] = {}
        by_job_name: dict[str, int] = {}
        async with self.db.session() as session:
            for queue_name, job_name, count, group_last in await session.execute(statement):
                total += int(count)
                by_queue[queue_name] = by_queue.get(queue_name, 0) + int(count)
                by_job_name[job_name] = by_job_name.get(job_name, 0) + int(count)
                newest = max(newest, str(group_last))
        return DeadLetterSummary(total=total, by_queue=by_queue, by_job_name=by_job_name, last_id=newest)

    async def resolve(self, id: str) -> FailedJob:
        """Mark a FAILED dead letter RESOLVED: handled by hand, not to be retried (retry refuses a RESOLVED
        row). A RESOLVED row is returned as it is; `FailedJobNotResolvableError` for a RETRIED one,
        `FailedJobNotFoundError` for an unknown id."""
        async with self.db.session() as session:
            await session.execute(
                update(FailedJob)
                .where(FailedJob.id == id, FailedJob.status == FailedJobStatus.FAILED.value)
                .values(status=FailedJobStatus.RESOLVED.value, updated_at=utcnow())
            )
            row = await session.get(FailedJob, id, populate_existing=True)
        if row is None:
            raise FailedJobNotFoundError(id)
        if row.status != FailedJobStatus.RESOLVED.value:
            raise FailedJobNotResolvableError(id, row.status)
        return row

    def data_problems(self, row: FailedJob) -> dict[str, str] | None:
        """The fields of the row's data its job's model refuses today (a retry would be refused with
        them), or None. Unknown without a queue (`FailedJobService(db=...)`): None."""
        if self.queue is None or not isinstance(row.job_data, dict):
            return None
        try:
            self.queue.registry.validate(row.job_name, row.job_data)
        except InvalidJobDataError as exc:
            return exc.fields
        return None

    async def for_jobs(self, jobs: Sequence[tuple[str, str]]) -> Rows:
        """The dead letters of these (queue, bullmq job id) pairs, newest first (the unique index on
        (queue_name, job_id, finished_on) serves the lookup)."""
        if not jobs:
            return []
        statement = (
            select(FailedJob)
            .where(tuple_(FailedJob.queue_name, FailedJob.job_id).in_(list(jobs)))
            .order_by(FailedJob.id.desc())
            .limit(MAX_LIMIT)
        )
        async with self.db.session() as session:
            return list((await session.scalars(statement)).all())


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
