"""The reconciler: what bullmq failed but the table does not hold gets inserted.

The worker records a final failure from bullmq's `failed` listener, after bullmq has moved the job to
its failed set. A worker killed in between, or a database that was down, leaves a failed job with no
row; the reconciler finds it on worker start and every DLQ_RECONCILE_INTERVAL_S.

bullmq's failed set is a sorted set scored by `finishedOn`, which is also part of the row's identity:
a page of (job id, score) pairs is compared with the table in one query, and only the jobs missing are
read in full. After a first full scan, later passes read only scores from the previous pass's start
minus `WINDOW_S` (workers' clocks set the scores; the window absorbs skew and late writes), with a full
scan again every `FULL_SCAN_EVERY` passes. A pass that fails does not move the watermark.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from bullmq import Job
from sqlalchemy import select, tuple_

from envoi.db.models import FailedJob
from envoi.dead_letters.recorder import SqlFailureRecorder
from envoi.queue.jobs import FinalFailure

if TYPE_CHECKING:
    from envoi.runtime import Envoi

log = logging.getLogger("envoi.dead_letters")

#: Failed-set entries compared with the table per query.
PAGE_SIZE = 500
WINDOW_S = 300.0
FULL_SCAN_EVERY = 60


class Reconciler:
    def __init__(self, envoi: Envoi, queues: Sequence[str], *, interval_s: float | None = None) -> None:
        self.envoi = envoi
        self.queues = tuple(queues)
        self.interval_s = envoi.settings.dlq_reconcile_interval_s if interval_s is None else interval_s
        self.recorder = SqlFailureRecorder(envoi.db)
        #: Per queue: the lowest failed-set score the next pass reads (None: everything).
        self._since: dict[str, float | None] = dict.fromkeys(self.queues)
        self._passes = 0

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
        """One pass over every queue; returns how many rows were inserted."""
        redis = self.envoi.queue.redis
        if redis is None:
            return 0
        full = full or self._passes % FULL_SCAN_EVERY == 0
        self._passes += 1
        added = 0
        for name in self.queues:
            started_ms = time.time() * 1000
            since = None if full else self._since[name]
            added += await self._reconcile_queue(redis.queue(name), name, since)
            self._since[name] = started_ms - max(WINDOW_S, 2 * self.interval_s) * 1000
        return added

    async def _reconcile_queue(self, queue: Any, name: str, since: float | None) -> int:
        client = self.envoi.queue.redis.client  # type: ignore[union-attr]
        key = queue.toKey("failed")
        low = "-inf" if since is None else str(int(since))
        added, offset = 0, 0
        while True:
            page = await client.zrangebyscore(key, low, "+inf", start=offset, num=PAGE_SIZE, withscores=True)
            if not page:
                return added
            offset += len(page)
            entries = [(str(entry[0]), int(entry[1])) for entry in page]  # (job id, finishedOn)
            missing = await self._missing(name, entries)
            failures = [f for f in [await self._failure(queue, name, job_id) for job_id in missing] if f]
            added += await self.recorder.record_many(failures)

    async def _missing(self, name: str, entries: list[tuple[str, int]]) -> list[str]:
        """The job ids of `entries` (id, finishedOn) that have no row."""
        statement = select(FailedJob.job_id, FailedJob.finished_on).where(
            FailedJob.queue_name == name,
            tuple_(FailedJob.job_id, FailedJob.finished_on).in_(entries),
        )
        async with self.envoi.db.session() as session:
            present = {(job_id, finished_on) for job_id, finished_on in await session.execute(statement)}
        return [job_id for job_id, finished_on in entries if (job_id, finished_on) not in present]

    async def _failure(self, queue: Any, name: str, job_id: str) -> FinalFailure | None:
        # Imported here: envoi.worker imports the runtime, which installs this package.
        from envoi.worker import final_failure

        job = await Job.fromId(queue, job_id)
        if job is None or not job.finishedOn:
            return None  # removed since the scan (by an operator, or a clean)
        return final_failure(name, job)


def companion(envoi: Envoi) -> Callable[[tuple[str, ...]], Callable[[], Coroutine[Any, Any, None]]]:
    """What `Envoi.worker_companions` holds: given a worker's queues, the reconciler's main loop."""

    def make(queues: tuple[str, ...]) -> Callable[[], Coroutine[Any, Any, None]]:
        return Reconciler(envoi, queues).run_forever

    return make
