"""The reconciler: what bullmq failed but the table does not hold gets inserted.

The worker records a final failure from bullmq's `failed` listener, after bullmq has moved the job to
its failed set. A worker killed in between, or a database that was down, leaves a failed job with no
row; the reconciler finds it on worker start and every DLQ_RECONCILE_INTERVAL_S.

It reads bullmq's failed set through `envoi.queue.failed_set` (which keeps the "seen" entries and the
watermark beside it): a pass reads failed-set scores from the watermark, the start of the last
successful pass (by any worker) minus `WINDOW_S` (workers' clocks set the scores: the window absorbs
skew and late writes). A pass that fails does not move it; without it (a new deployment) the first pass
reads the whole set. The rest of a page is compared with the table in one query; only the jobs missing
are read in full.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from sqlalchemy import select, tuple_

from envoi.db.models import FailedJob
from envoi.db.session import Database
from envoi.dead_letters.recorder import SqlFailureRecorder
from envoi.queue.failed_set import Entry, FailedSet

log = logging.getLogger("envoi.dead_letters")

#: Failed-set entries compared with the table per query.
PAGE_SIZE = 500
WINDOW_S = 300.0


class Reconciler:
    def __init__(
        self,
        *,
        db: Database,
        failed_set: FailedSet,
        recorder: SqlFailureRecorder,
        queues: Sequence[str],
        interval_s: float,
    ) -> None:
        self.db = db
        self.failed_set = failed_set
        #: Inserts what was missed (without the recorder's "seen" callback: the pass marks its own).
        self.recorder = recorder
        self.queues = tuple(queues)
        self.interval_s = interval_s

    async def run_forever(self) -> None:
        """Reconcile now, then every interval, until cancelled. Errors are logged, never raised."""
        while True:
            try:
                added = await self.reconcile_once()
                if added:
                    log.warning("Reconciler recorded %d dead letter(s) the worker had missed", added)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Dead-letter reconciliation failed; trying again in %.0fs", self.interval_s)
            await asyncio.sleep(self.interval_s)  # the schedule itself, not a synchronisation

    async def reconcile_once(self, *, full: bool = False) -> int:
        """One pass over every queue (`full`: from the start of the failed set, whatever the watermark);
        returns how many rows were inserted. Raises `QueueUnavailableError` when Redis cannot be asked."""
        added = 0
        for name in self.queues:
            started_ms = time.time() * 1000
            since = None if full else await self.failed_set.watermark(name)
            added += await self._reconcile_queue(name, since)
            watermark = int(started_ms - max(WINDOW_S, 2 * self.interval_s) * 1000)
            await self.failed_set.move_watermark(name, watermark)
        return added

    async def _reconcile_queue(self, name: str, since: str | None) -> int:
        added, offset = 0, 0
        while True:
            entries = await self.failed_set.page(name, since=since, offset=offset, size=PAGE_SIZE)
            if not entries:
                return added
            offset += len(entries)
            unseen = await self.failed_set.unseen(name, entries)
            if not unseen:
                continue
            missing = await self._missing(name, unseen)
            failures = [f for f in [await self.failed_set.failure(name, job_id) for job_id in missing] if f]
            added += await self.recorder.record_many(failures)
            await self.failed_set.mark_seen(name, unseen)

    async def _missing(self, name: str, entries: list[Entry]) -> list[str]:
        """The job ids of `entries` that have no row."""
        statement = select(FailedJob.job_id, FailedJob.finished_on).where(
            FailedJob.queue_name == name,
            tuple_(FailedJob.job_id, FailedJob.finished_on).in_(entries),
        )
        async with self.db.session() as session:
            present = {(job_id, finished_on) for job_id, finished_on in await session.execute(statement)}
        return [job_id for job_id, finished_on in entries if (job_id, finished_on) not in present]
