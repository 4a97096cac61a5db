"""`SqlFailureRecorder`: one `failed_jobs` row per final failure, however many times it is reported.

The worker's failed listener and the reconciler may both report the same failure; the unique constraint
(queue_name, job_id, finished_on) makes the second insert a no-op (`ON CONFLICT DO NOTHING`, which both
SQLite and PostgreSQL speak). Inline failures have no job id: each one is its own row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

from envoi.db.models import FailedJob, FailedJobStatus
from envoi.db.session import Database
from envoi.db.types import new_id, utcnow
from envoi.events import EventBus, EventType, dead_letter_data
from envoi.queue.jobs import FinalFailure

log = logging.getLogger("envoi.dead_letters")


def failure_row(failure: FinalFailure) -> dict[str, Any]:
    """The column values of a final failure."""
    now = utcnow()
    finished_on = failure.finished_on
    if finished_on is None and failure.job_id is None:
        # An inline failure happens now; the time is shown to people, it identifies nothing.
        finished_on = round(time.time() * 1000)
    return {
        "id": new_id(),
        "queue_name": failure.queue,
        "job_name": failure.job_name,
        "job_id": failure.job_id,
        "job_data": failure.data,
        "job_options": failure.options,
        "error_message": failure.error_message,
        "stacktrace": list(failure.stacktrace),
        "attempts_made": failure.attempts_made,
        "status": FailedJobStatus.FAILED.value,
        "retried_job_id": None,
        "finished_on": finished_on,
        "created_at": now,
        "updated_at": now,
    }


class SqlFailureRecorder:
    """`on_recorded` runs after a successful insert (the reconciler's "seen" mark); its errors are
    logged, not raised: the row is there, and the reconciler only has more to check."""

    def __init__(
        self,
        db: Database,
        *,
        on_recorded: Callable[[FinalFailure], Awaitable[None]] | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.db = db
        self.on_recorded = on_recorded
        self.events = events

    async def record(self, failure: FinalFailure) -> None:
        await self.record_many([failure])
        if self.on_recorded is not None:
            try:
                await self.on_recorded(failure)
            except Exception as exc:
                log.warning("Dead letter recorded; could not mark it seen in Redis: %s", exc)

    async def record_many(self, failures: list[FinalFailure]) -> int:
        """Insert what is not there yet; returns how many rows were new."""
        if not failures:
            return 0
        dialect = postgresql if self.db.dialect == "postgresql" else sqlite
        rows = [failure_row(f) for f in failures]
        statement = (
            dialect.insert(FailedJob)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["queue_name", "job_id", "finished_on"])
            # Counted from RETURNING: psycopg reports no rowcount (-1) for an INSERT built by SQLAlchemy.
            .returning(FailedJob.id)
        )
        async with self.db.session() as session:
            inserted = set((await session.execute(statement)).scalars())
        if self.events is not None:
            for row in rows:
                if row["id"] in inserted:
                    await self.events.emit(EventType.DEAD_LETTER_CREATED, dead_letter_data(row))
        return len(inserted)
