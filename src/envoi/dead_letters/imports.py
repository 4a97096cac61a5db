"""The original NestJS system's dead letters (its Prisma `failed_jobs` table) copied into envoi's.

The original's table, in the schema it lives in (`public` unless its DATABASE_URL said otherwise):

    id (cuid), queueName, jobName, jobData (JSON as text), errorMessage, jobId?, attemptsMade,
    createdAt, updatedAt (timestamps without time zone, in UTC)

Each row becomes one envoi dead letter, status FAILED, with no stack trace (the original kept none):

- `id`: a ULID whose time part is the row's `createdAt` and whose rest is a hash of the original id. Pages
  (newest first, by id) keep their order, and a second run computes the same ids: the insert skips what
  is there (`ON CONFLICT DO NOTHING`), so nothing is imported twice;
- `job_options`: `{"jobId": ..., "importedFrom": {"table": "public.failed_jobs", "id": <original id>}}`;
- `job_data`: `jobData` parsed as JSON; text that is not JSON is kept as a JSON string (and counted);
- `finished_on`: bullmq's `finishedOn` when the job is still in bullmq's failed set (the original kept
  failed jobs in Redis), else `createdAt`. envoi's reconciler records that failed set too: both then name
  the same failure (queue, jobId, finishedOn), and whichever comes second adds nothing.

Names longer than envoi's columns are cut to fit (the original's columns are unbounded).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Integer, MetaData, Row, Table, Text, inspect, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import NoSuchTableError
from sqlalchemy.ext.asyncio import AsyncConnection
from ulid import ULID

from envoi.db.models import FailedJob, FailedJobStatus
from envoi.db.session import Database
from envoi.db.types import utcnow
from envoi.errors import ConfigError, EnvoiError, QueueUnavailableError
from envoi.queue.failed_set import FailedSet

__all__ = ["ImportReport", "ImportSourceError", "OriginalFailedJobs", "import_id", "original_table"]

log = logging.getLogger("envoi.dead_letters")

TABLE = "failed_jobs"
#: Rows read, looked up in Redis and inserted at a time.
PAGE_SIZE = 500
#: envoi's column lengths (`FailedJob`).
NAME_MAX, JOB_ID_MAX = 100, 255


class ImportSourceError(EnvoiError):
    """The original's table cannot be read: missing, or not shaped as the original's."""


@dataclass(frozen=True, slots=True)
class ImportReport:
    source: str
    read: int
    imported: int
    #: Rows envoi already had: imported by an earlier run, or recorded by the reconciler from Redis.
    already_present: int
    #: Rows whose `jobData` was not JSON: imported, with the text as a JSON string.
    kept_as_text: int
    #: Rows whose failure was found in bullmq's failed set (their `finishedOn` taken from there).
    matched_in_redis: int
    dry_run: bool


def original_table(schema: str) -> Table:
    """The original's `failed_jobs`, as its Prisma schema declares it (only the columns read)."""
    return Table(
        TABLE,
        MetaData(),
        Column("id", Text, primary_key=True),
        Column("queueName", Text),
        Column("jobName", Text),
        Column("jobData", Text),
        Column("errorMessage", Text),
        Column("jobId", Text),
        Column("attemptsMade", Integer),
        Column("createdAt", DateTime),
        Column("updatedAt", DateTime),
        schema=schema,
    )


def import_id(original_id: str, created_at: datetime) -> str:
    """The envoi id of an original row: the same on every run, sorted by `created_at` like any other."""
    millis = int(_utc(created_at).timestamp() * 1000)
    digest = hashlib.sha256(original_id.encode()).digest()
    return str(ULID.from_bytes(millis.to_bytes(6, "big") + digest[:10]))


class OriginalFailedJobs:
    """Reads the original's table from `source` and inserts its rows into envoi's `failed_jobs` in `db`
    (`failed_set`: bullmq's, for `finishedOn`; None when the queue is disabled)."""

    def __init__(self, *, db: Database, source: Database, schema: str, failed_set: FailedSet | None) -> None:
        if source.dialect != "postgresql":
            raise ConfigError("the original system's database is PostgreSQL: give a postgresql:// URL")
        self.db = db
        self.source = source
        self.table = original_table(schema)
        self.failed_set = failed_set
        self.name = f"{schema}.{TABLE}"

    async def run(self, *, dry_run: bool = False) -> ImportReport:
        """Copy every row (in one transaction: all or nothing); `dry_run` counts and rolls back.
        Raises `ImportSourceError`, `ConfigError` (envoi's own table named), `QueueUnavailableError`
        (Redis asked for bullmq's failed set before anything is committed)."""
        counts = {"read": 0, "imported": 0, "kept_as_text": 0, "matched_in_redis": 0}
        seen: list[tuple[str, str, int]] = []
        async with self.source.engine.connect() as source:
            await self._check(source)
            async with self.db.engine.connect() as target:
                transaction = await target.begin()
                try:
                    async for page in self._pages(source):
                        rows, kept_as_text, matched = await self._rows(page)
                        counts["read"] += len(page)
                        counts["kept_as_text"] += kept_as_text
                        counts["matched_in_redis"] += len(matched)
                        counts["imported"] += await self._insert(target, rows)
                        seen.extend(matched)
                    if dry_run:
                        await transaction.rollback()
                    else:
                        await transaction.commit()
                except BaseException:
                    await transaction.rollback()
                    raise
        if not dry_run and self.failed_set is not None:
            try:
                await self._mark_seen(seen)
            except QueueUnavailableError as exc:
                # The rows are in: the reconciler only has more to compare (and finds them there).
                log.warning("Dead letters imported; could not mark them seen in Redis: %s", exc)
        return ImportReport(
            source=self.name,
            already_present=counts["read"] - counts["imported"],
            dry_run=dry_run,
            **counts,
        )

    async def _check(self, source: AsyncConnection) -> None:
        schema = self.table.schema

        def columns(connection: Any) -> set[str]:
            return {c["name"] for c in inspect(connection).get_columns(TABLE, schema=schema)}

        try:
            found = await source.run_sync(columns)
        except NoSuchTableError:
            raise ImportSourceError(f"no table {self.name} in the original's database") from None
        if {"queue_name", "job_data"} <= found:
            raise ConfigError(
                f"{self.name} is envoi's own table: keep envoi's tables in their own schema "
                "(DATABASE_SCHEMA) and name the original's with --from-schema"
            )
        missing = sorted(set(self.table.c.keys()) - found)
        if missing:
            raise ImportSourceError(
                f"{self.name} is not the original's table: no column {', '.join(missing)}"
            )

    async def _pages(self, source: AsyncConnection) -> AsyncIterator[list[Row[Any]]]:
        last: str | None = None
        while True:
            query = select(self.table).order_by(self.table.c.id).limit(PAGE_SIZE)
            if last is not None:
                query = query.where(self.table.c.id > last)
            page = list(await source.execute(query))
            if not page:
                return
            yield page
            last = page[-1].id

    async def _rows(
        self, page: Sequence[Row[Any]]
    ) -> tuple[list[dict[str, Any]], int, list[tuple[str, str, int]]]:
        """envoi's rows for `page`, how many kept `jobData` as text, and the (queue, job id, finishedOn)
        found in bullmq's failed set."""
        finished: dict[tuple[str, str], int] = {}
        if self.failed_set is not None:
            by_queue: dict[str, list[str]] = {}
            for row in page:
                if row.jobId:
                    by_queue.setdefault(row.queueName, []).append(row.jobId)
            for queue, job_ids in by_queue.items():
                for job_id, finished_on in (await self.failed_set.finished_on(queue, job_ids)).items():
                    finished[(queue, job_id)] = finished_on
        rows, kept_as_text = [], 0
        for row in page:
            data, is_json = _parse(row.jobData)
            kept_as_text += not is_json
            rows.append(self._row(row, data, finished.get((row.queueName, row.jobId or ""))))
        matched = [(queue, job_id, at) for (queue, job_id), at in finished.items()]
        return rows, kept_as_text, matched

    def _row(self, row: Row[Any], data: Any, finished_on: int | None) -> dict[str, Any]:
        created_at = _utc(row.createdAt)
        options: dict[str, Any] = {"importedFrom": {"table": self.name, "id": row.id}}
        if row.jobId:
            options = {"jobId": row.jobId, **options}
        return {
            "id": import_id(row.id, created_at),
            "queue_name": row.queueName[:NAME_MAX],
            "job_name": row.jobName[:NAME_MAX],
            "job_id": row.jobId[:JOB_ID_MAX] if row.jobId else None,
            "job_data": data,
            "job_options": options,
            "error_message": row.errorMessage,
            "stacktrace": [],
            "attempts_made": row.attemptsMade or 0,
            "status": FailedJobStatus.FAILED.value,
            "retried_job_id": None,
            "finished_on": finished_on if finished_on is not None else int(created_at.timestamp() * 1000),
            "created_at": created_at,
            "updated_at": _utc(row.updatedAt) if row.updatedAt else utcnow(),
        }

    async def _insert(self, target: AsyncConnection, rows: list[dict[str, Any]]) -> int:
        if not rows:
            return 0
        dialect = postgresql if self.db.dialect == "postgresql" else sqlite
        # No conflict target: the id (an earlier run) and the failure's identity (the reconciler) both count.
        statement = dialect.insert(FailedJob).values(rows).on_conflict_do_nothing().returning(FailedJob.id)
        # Counted from RETURNING (only the rows inserted): psycopg reports no rowcount for an INSERT.
        return len((await target.execute(statement)).all())

    async def _mark_seen(self, matched: list[tuple[str, str, int]]) -> None:
        """Tell the reconciler these failures have a row, so that it does not look them up again."""
        assert self.failed_set is not None
        by_queue: dict[str, list[tuple[str, int]]] = {}
        for queue, job_id, finished_on in matched:
            by_queue.setdefault(queue, []).append((job_id, finished_on))
        for queue, entries in by_queue.items():
            await self.failed_set.mark_seen(queue, entries)


def _utc(value: datetime) -> datetime:
    # Prisma writes UTC into `timestamp without time zone`.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _parse(value: str) -> tuple[Any, bool]:
    """`jobData` parsed, and whether it was JSON (if not, the text itself is kept)."""
    try:
        return json.loads(value), True
    except ValueError:
        return value, False
