"""`FailedJobService`: read, retry and delete dead letters. Used by `envoi dlq` and the admin API.

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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func, or_, select, tuple_, update

from envoi import metrics
from envoi.db.models import FailedJob, FailedJobStatus
from envoi.db.session import Database
from envoi.db.types import utcnow
from envoi.errors import EnvoiError, InvalidJobDataError
from envoi.masking import mask_payload
from envoi.queue.service import QueueService

log = logging.getLogger("envoi.dead_letters")

__all__ = [
    "DeadLetterStats",
    "FailedJobFilters",
    "FailedJobNotFoundError",
    "FailedJobNotResolvableError",
    "FailedJobNotRetryableError",
    "FailedJobService",
    "Page",
    "parse_status",
    "row_as_dict",
]

MAX_LIMIT = 500
#: Rows read or changed per statement in bulk operations.
BATCH_SIZE = 500
_ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
#: Options a retry keeps; the old job id is dropped (bullmq would ignore an add under it).
RETRY_OPTIONS = ("attempts", "backoff", "priority", "lifo", "removeOnComplete")

Progress = Callable[[int], None]
#: A module-level name: inside the class, `list` is the method.
Rows = list[FailedJob]


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


def parse_status(value: str | FailedJobStatus | None) -> FailedJobStatus | None:
    if value is None or isinstance(value, FailedJobStatus):
        return value
    try:
        return FailedJobStatus(value.upper())
    except ValueError:
        known = ", ".join(s.value for s in FailedJobStatus)
        raise ValueError(f"unknown status {value!r}; expected one of {known}") from None


@dataclass(frozen=True, slots=True)
class FailedJobFilters:
    """Which dead letters an operation is about; every field left None matches everything."""

    queue_name: str | None = None
    job_name: str | None = None
    status: FailedJobStatus | None = None
    #: created_at >= since
    since: datetime | None = None
    #: created_at < until
    until: datetime | None = None
    #: A substring of the error message, or a job id.
    search: str | None = None

    def __post_init__(self) -> None:
        # Accept "failed" or "FAILED" from a CLI or a query string; reject anything else here, once.
        object.__setattr__(self, "status", parse_status(self.status))
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware")

    def clauses(self) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = []
        if self.queue_name is not None:
            where.append(FailedJob.queue_name == self.queue_name)
        if self.job_name is not None:
            where.append(FailedJob.job_name == self.job_name)
        if self.status is not None:
            where.append(FailedJob.status == self.status.value)
        if self.since is not None:
            where.append(FailedJob.created_at >= self.since)
        if self.until is not None:
            where.append(FailedJob.created_at < self.until)
        if self.search:
            pattern = "%" + self.search.replace("\\", "\\\\").replace("%", r"\%").replace("_", r"\_") + "%"
            where.append(
                or_(FailedJob.error_message.ilike(pattern, escape="\\"), FailedJob.job_id == self.search)
            )
        return where

    @property
    def is_empty(self) -> bool:
        return all(getattr(self, name) in (None, "") for name in self.__slots__)


@dataclass(frozen=True, slots=True)
class Page:
    items: list[FailedJob]
    #: Pass back as `cursor` for the next (older) page; None on the last page.
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class DeadLetterStats:
    total: int
    by_queue: dict[str, int] = field(default_factory=dict)
    by_job_name: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)


def row_as_dict(row: FailedJob, *, reveal: bool = False) -> dict[str, Any]:
    """A JSON-ready dead letter; recipients in the payload are masked unless `reveal`."""
    return {
        "id": row.id,
        "queue_name": row.queue_name,
        "job_name": row.job_name,
        "job_id": row.job_id,
        "job_data": row.job_data if reveal else mask_payload(row.job_data),
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


class FailedJobService:
    """`queue` is needed by `retry` only: `FailedJobService(db=database)` reads and deletes (the
    `envoi dlq` commands that need no Redis and no handlers)."""

    def __init__(self, *, db: Database, queue: QueueService | None = None) -> None:
        self.db = db
        self.queue = queue

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

    async def retry(self, id: str, *, force: bool = False) -> FailedJob:
        """Enqueue the job again (fresh job id, fresh attempts) and mark the row RETRIED.

        Raises `FailedJobNotFoundError`, or `FailedJobNotRetryableError` when the row is not FAILED
        (with `force`, a RETRIED row is enqueued again under the same job id), or `ValueError` for a
        queue envoi does not know (the row is left FAILED).
        """
        if self.queue is None:
            raise TypeError("retry needs FailedJobService(queue=...): it enqueues")
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
        try:
            await self.queue.enqueue(
                row.queue_name, row.job_name, data, job_id=job_id, delay=delay, **options
            )
        except BaseException:
            # Nothing was enqueued (a bad queue name, a cancelled call): give the row back.
            await self._unclaim(id, job_id)
            raise
        metrics.JOBS_RETRIED.labels(row.queue_name, row.job_name).inc()
        return row

    async def _unclaim(self, id: str, job_id: str) -> None:
        async with self.db.session() as session:
            await session.execute(
                update(FailedJob)
                .where(FailedJob.id == id, FailedJob.retried_job_id == job_id)
                .values(status=FailedJobStatus.FAILED.value, retried_job_id=None, updated_at=utcnow())
            )

    async def retry_many(self, filters: FailedJobFilters, *, progress: Progress | None = None) -> int:
        """Retry every matching FAILED row (rows in another status are skipped); returns how many."""
        if filters.status not in (None, FailedJobStatus.FAILED):
            return 0
        failed_only = _with_status(filters, FailedJobStatus.FAILED)
        retried, cursor = 0, None
        while True:
            async with self.db.session() as session:
                ids = list((await session.scalars(self._ids(failed_only, cursor).limit(BATCH_SIZE))).all())
            if not ids:
                return retried
            for row_id in ids:
                try:
                    await self.retry(row_id)
                    retried += 1
                except (FailedJobNotFoundError, FailedJobNotRetryableError):
                    pass  # deleted or retried by someone else since the page was read
                except ValueError as exc:  # a queue envoi does not serve: the row stays FAILED
                    log.warning("Dead letter %s not retried: %s", row_id, exc)
            cursor = ids[-1]
            if progress:
                progress(len(ids))

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


def _with_status(filters: FailedJobFilters, status: FailedJobStatus) -> FailedJobFilters:
    return FailedJobFilters(
        queue_name=filters.queue_name,
        job_name=filters.job_name,
        status=status,
        since=filters.since,
        until=filters.until,
        search=filters.search,
    )


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
