"""The reconciler: what bullmq failed but the table does not hold gets inserted.

The worker records a final failure from bullmq's `failed` listener, after bullmq has moved the job to
its failed set. A worker killed in between, or a database that was down, leaves a failed job with no
row; the reconciler finds it on worker start and every DLQ_RECONCILE_INTERVAL_S.

bullmq's failed set is a sorted set scored by `finishedOn`, which is also part of the row's identity.
Two Redis keys beside each queue keep passes short and keep deleted dead letters deleted:

- `<prefix>:<queue>:envoi-dlq-seen`: the failures known to have a row (member `finishedOn:jobId`), added
  by the recorder after its insert and by the reconciler after its check. A seen failure is never
  looked up again, so a row an operator deleted is not recorded a second time.
- `<prefix>:<queue>:envoi-dlq-reconciled`: the watermark, the start of the last successful pass (by any
  worker) minus `WINDOW_S`; a pass reads failed-set scores from there (workers' clocks set the scores:
  the window absorbs skew and late writes). A pass that fails does not move it. Without it (a new
  deployment) the first pass reads the whole set. Seen entries below the watermark are trimmed.

The rest of a page is compared with the table in one query; only the jobs missing are read in full.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import TYPE_CHECKING, Any

from bullmq import Job
from redis.asyncio import Redis
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
WATERMARK_KEY = "envoi-dlq-reconciled"
SEEN_KEY = "envoi-dlq-seen"

Entry = tuple[str, int]  # (job id, finishedOn)


def _member(entry: Entry) -> str:
    return f"{entry[1]}:{entry[0]}"


async def mark_seen(envoi: Envoi, failure: FinalFailure) -> None:
    """After the recorder's insert: this failure has a row (best effort; the reconciler checks anyway)."""
    redis = envoi.queue.redis
    if redis is None or failure.job_id is None or failure.finished_on is None:
        return
    entry = (failure.job_id, failure.finished_on)
    await redis.client.zadd(redis.queue(failure.queue).toKey(SEEN_KEY), {_member(entry): entry[1]})


class Reconciler:
    def __init__(self, envoi: Envoi, queues: Sequence[str], *, interval_s: float | None = None) -> None:
        self.envoi = envoi
        self.queues = tuple(queues)
        self.interval_s = envoi.settings.dlq_reconcile_interval_s if interval_s is None else interval_s
        self.recorder = SqlFailureRecorder(envoi.db, events=envoi.events)

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
        returns how many rows were inserted."""
        redis = self.envoi.queue.redis
        if redis is None:
            return 0
        added = 0
        for name in self.queues:
            queue = redis.queue(name)
            mark = queue.toKey(WATERMARK_KEY)
            started_ms = time.time() * 1000
            raw = None if full else await redis.client.get(mark)
            since = raw.decode() if isinstance(raw, bytes) else raw
            added += await self._reconcile_queue(redis.client, queue, name, since)
            watermark = int(started_ms - max(WINDOW_S, 2 * self.interval_s) * 1000)
            await redis.client.set(mark, str(watermark))
            await redis.client.zremrangebyscore(queue.toKey(SEEN_KEY), "-inf", f"({watermark}")
        return added

    async def _reconcile_queue(self, client: Redis, queue: Any, name: str, since: str | None) -> int:
        failed, seen = queue.toKey("failed"), queue.toKey(SEEN_KEY)
        added, offset = 0, 0
        while True:
            page = await client.zrangebyscore(
                failed, since or "-inf", "+inf", start=offset, num=PAGE_SIZE, withscores=True
            )
            if not page:
                return added
            offset += len(page)
            entries: list[Entry] = [(str(e[0]), int(e[1])) for e in page]
            known = await client.zmscore(seen, [_member(e) for e in entries])
            unseen = [e for e, score in zip(entries, known, strict=True) if score is None]
            if not unseen:
                continue
            missing = await self._missing(name, unseen)
            failures = [f for f in [await self._failure(queue, name, job_id) for job_id in missing] if f]
            added += await self.recorder.record_many(failures)
            await client.zadd(seen, {_member(e): e[1] for e in unseen})

    async def _missing(self, name: str, entries: list[Entry]) -> list[str]:
        """The job ids of `entries` that have no row."""
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
