"""bullmq's failed set, as the dead-letter reconciler reads it, and envoi's two keys beside it.

bullmq's failed set is a sorted set scored by `finishedOn`, which is also part of a dead letter's
identity. Two envoi keys per queue (`envoi.queue.keys`) keep reconciliation passes short:

- `dlq:{queue}:seen`: the failures known to have a row (member `finishedOn:jobId`), added after each
  insert and after each check. A seen failure is never looked up again, so a row an operator deleted is
  not recorded a second time.
- `dlq:{queue}:reconciled`: the watermark; a pass reads failed-set scores from there. Seen entries below
  it are trimmed when it moves.

A failure is *recorded* (it has a row, or had one an operator deleted) when it is below the watermark
(every pass reads from there on, so everything below was compared with the table) or in the seen set.
`clean_recorded` removes only those from bullmq's failed set: the operator's "clean failed" can never
take away a failure the dead letters do not hold yet.

Every call raises `QueueUnavailableError` when Redis cannot be asked.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bullmq import Job

from envoi.queue.failures import final_failure
from envoi.queue.jobs import FinalFailure
from envoi.queue.redis_backend import RedisBackend, RedisDoor, text

#: (job id, finishedOn in ms)
Entry = tuple[str, int]
#: Failed-set entries read per step of a clean.
CLEAN_PAGE = 500


@dataclass(frozen=True, slots=True)
class CleanResult:
    removed: int
    #: Failed jobs older than asked but kept: no dead-letter row is known for them yet.
    kept: int = 0


def _member(entry: Entry) -> str:
    return f"{entry[1]}:{entry[0]}"


class FailedSet:
    def __init__(self, door: RedisDoor) -> None:
        self._door = door

    async def watermark(self, queue: str) -> str | None:
        async def read(redis: RedisBackend) -> str | None:
            return text(await redis.client.get(redis.keys.dlq_watermark(queue)))

        return await self._door(read)

    async def move_watermark(self, queue: str, watermark_ms: int) -> None:
        """Set the watermark and forget the seen entries below it."""

        async def write(redis: RedisBackend) -> None:
            await redis.client.set(redis.keys.dlq_watermark(queue), str(watermark_ms))
            await redis.client.zremrangebyscore(redis.keys.dlq_seen(queue), "-inf", f"({watermark_ms}")

        await self._door(write)

    async def page(self, queue: str, *, since: str | None, offset: int, size: int) -> list[Entry]:
        """Failed-set entries scored from `since` (all when None), oldest first."""

        async def read(redis: RedisBackend) -> list[Entry]:
            failed = redis.queue(queue).toKey("failed")
            page = await redis.client.zrangebyscore(
                failed, since or "-inf", "+inf", start=offset, num=size, withscores=True
            )
            return [(str(entry[0]), int(entry[1])) for entry in page]

        return await self._door(read)

    async def unseen(self, queue: str, entries: list[Entry]) -> list[Entry]:
        async def read(redis: RedisBackend) -> list[Entry]:
            known = await redis.client.zmscore(redis.keys.dlq_seen(queue), [_member(e) for e in entries])
            return [e for e, score in zip(entries, known, strict=True) if score is None]

        return await self._door(read) if entries else []

    async def mark_seen(self, queue: str, entries: list[Entry]) -> None:
        async def write(redis: RedisBackend) -> None:
            await redis.client.zadd(redis.keys.dlq_seen(queue), {_member(e): e[1] for e in entries})

        if entries:
            await self._door(write)

    async def mark_recorded(self, failure: FinalFailure) -> None:
        """After a dead-letter insert: this failure has a row (a job run inline has no entry to mark)."""
        if failure.job_id is not None and failure.finished_on is not None:
            await self.mark_seen(failure.queue, [(failure.job_id, failure.finished_on)])

    async def finished_on(self, queue: str, job_ids: list[str]) -> dict[str, int]:
        """`finishedOn` (the failed set's score) of those of `job_ids` still in the failed set."""

        async def read(redis: RedisBackend) -> dict[str, int]:
            scores = await redis.client.zmscore(redis.queue(queue).toKey("failed"), job_ids)
            return {
                job_id: int(score) for job_id, score in zip(job_ids, scores, strict=True) if score is not None
            }

        return await self._door(read) if job_ids else {}

    async def failure(self, queue: str, job_id: str) -> FinalFailure | None:
        """The failed job read in full; None when it was removed since the scan."""

        async def read(redis: RedisBackend) -> FinalFailure | None:
            job = await Job.fromId(redis.queue(queue), job_id)
            if job is None or not job.finishedOn:
                return None
            return final_failure(queue, job)

        return await self._door(read)

    async def clean_recorded(self, queue: str, *, older_than_ms: int, limit: int) -> CleanResult:
        """Remove from bullmq's failed set up to `limit` failures older than `older_than_ms` that are
        recorded as dead letters (see the module docstring); the others are kept and counted."""

        async def clean(redis: RedisBackend) -> CleanResult:
            q = redis.queue(queue)
            failed, cutoff = q.toKey("failed"), int(time.time() * 1000) - older_than_ms
            removed = kept = 0
            mark = text(await redis.client.get(redis.keys.dlq_watermark(queue)))
            watermark = int(mark) if mark else None
            while removed < limit:
                async with asyncio.timeout(redis.budget_s):
                    # Removed entries leave the range: the offset skips only the ones kept.
                    page = await redis.client.zrangebyscore(
                        failed, "-inf", f"({cutoff}", start=kept, num=CLEAN_PAGE, withscores=True
                    )
                    if not page:
                        break
                    entries = [(str(e[0]), int(e[1])) for e in page]
                    seen = await redis.client.zmscore(
                        redis.keys.dlq_seen(queue), [_member(e) for e in entries]
                    )
                    for (job_id, finished_on), seen_score in zip(entries, seen, strict=True):
                        if removed >= limit:
                            break
                        recorded = seen_score is not None or (
                            watermark is not None and finished_on < watermark
                        )
                        # Still failed as read (not retried from another tool meanwhile), then removed.
                        if (
                            recorded
                            and await redis.client.zscore(failed, job_id) == finished_on
                            and await q.remove(job_id)
                        ):
                            removed += 1
                        else:
                            kept += 1
            return CleanResult(removed=removed, kept=kept)

        return await self._door(clean)
