"""What an operator sees of bullmq's queues, and may do to them: jobs in every state, one job, promote,
cancel, pause, resume, clean; the workers connected; completed and failed jobs per minute.

Everything goes through `QueueService.on_redis` and raises `QueueUnavailableError` when Redis cannot be
asked. What the Python port of bullmq (3.4) offers is used where it exists (`getJobs`, `Job.fromId`,
`getJobState`, `Job.promote`, `remove`, `pause`, `resume`, `isPaused`, `clean`, `get_workers`); it has no
`getMetrics`, so the counts bullmq's `moveToFinished` keeps under `{prefix}:{queue}:metrics:{completed,
failed}` (when the worker has the `metrics` option, WORKER_THROUGHPUT_MINUTES) are read here as Node's
`Queue.getMetrics` reads them.

Pages are positions in bullmq's lists (the cursor is an offset): a job that moves between two pages can
be skipped or shown twice, as in bullmq's own `getJobs`.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, get_args

from bullmq import Job

from envoi.config import parse_duration
from envoi.errors import EnvoiError
from envoi.queue.failed_set import CleanResult, FailedSet
from envoi.queue.names import QUEUE_NAMES
from envoi.queue.redis_backend import RedisBackend, RedisDoor, text

#: The states a page lists (bullmq's `paused` and `waiting-children` are not used by envoi's jobs).
ListedState = Literal["waiting", "delayed", "active", "prioritized", "completed", "failed"]
LISTED_STATES: tuple[str, ...] = get_args(ListedState)
#: bullmq's own order for each state: the next job to run first, the latest finished first.
_ASCENDING = {"waiting": True, "delayed": True, "active": True, "prioritized": True}
#: States a job can be cancelled (removed) in: it has not started.
CANCELLABLE = frozenset({"waiting", "delayed", "prioritized", "paused", "waiting-children"})
#: bullmq scores delayed jobs `due_ms * 0x1000 + sequence`.
_DELAY_SCORE_FACTOR = 0x1000
#: Worker connections are named `{prefix}:{queue}:w:envoi/{host}/{pid}/{concurrency}` (see `worker_name`).
_WORKER_NAME = re.compile(r"^envoi/(?P<host>[^/]+)/(?P<pid>\d+)/(?P<concurrency>\d+)$")


class UnknownQueueError(EnvoiError):
    def __init__(self, queue: str) -> None:
        super().__init__(f"No queue named {queue!r}; envoi serves {', '.join(QUEUE_NAMES)}")
        self.queue = queue


class JobNotFoundError(EnvoiError):
    def __init__(self, queue: str, job_id: str) -> None:
        super().__init__(f"No job {job_id} in queue {queue}")
        self.queue, self.job_id = queue, job_id


class JobStateError(EnvoiError):
    """The job is not in a state that allows the action (promote a job that is not delayed, cancel one
    that is running)."""

    def __init__(self, job_id: str, state: str, wanted: str) -> None:
        super().__init__(f"Job {job_id} is {state}: {wanted}")
        self.job_id, self.state = job_id, state


def parse_duration_ms(value: str) -> int:
    """`1500`, `1500ms`, `30s`, `15m`, `1h`, `7d` as milliseconds (a bare number is milliseconds, as
    bullmq counts); ValueError otherwise."""
    return int(parse_duration(value, bare="ms", whole=True) // timedelta(milliseconds=1))


def worker_name(host: str, pid: int, concurrency: int) -> str:
    """The `name` envoi's workers give bullmq, which names their Redis connections after it: the worker
    list then says where each worker runs. Client names take no spaces: anything unusual becomes `_`."""
    safe_host = re.sub(r"[^A-Za-z0-9.\-_]", "_", host) or "unknown"
    return f"envoi/{safe_host}/{pid}/{concurrency}"


def _when(ms: int | float | None) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, UTC) if ms else None


@dataclass(frozen=True, slots=True)
class JobView:
    queue: str
    id: str
    name: str
    #: As stored (not masked: the caller masks what it shows).
    data: Any
    state: str
    attempts_made: int
    max_attempts: int
    created_at: datetime | None
    #: Delayed jobs: when the job becomes due.
    run_at: datetime | None
    processed_at: datetime | None
    finished_at: datetime | None
    failed_reason: str | None
    priority: int
    options: dict[str, Any] = field(default_factory=dict)
    stacktrace: list[str] = field(default_factory=list)
    return_value: Any = None


@dataclass(frozen=True, slots=True)
class JobPage:
    items: list[JobView]
    #: Pass back as `offset` for the next page; None on the last page.
    next_offset: int | None


@dataclass(frozen=True, slots=True)
class WorkerView:
    queue: str
    #: envoi's `envoi/{host}/{pid}/{concurrency}`, or bullmq's connection name for another worker.
    name: str
    host: str | None
    pid: int | None
    concurrency: int | None
    #: The Redis client address (host:port) of the worker's oldest connection.
    address: str | None
    started_at: datetime
    last_seen_at: datetime
    connections: int


@dataclass(frozen=True, slots=True)
class Minute:
    start: datetime
    completed: int
    failed: int


def _view(queue: str, job: Any, state: str, run_at_ms: int | None = None) -> JobView:
    opts = dict(job.opts or {})
    return JobView(
        queue=queue,
        id=str(job.id),
        name=str(job.name),
        data=job.data,
        state=state,
        attempts_made=int(job.attemptsMade or 0),
        max_attempts=int(opts.get("attempts") or 1),
        created_at=_when(job.timestamp),
        run_at=_when(
            run_at_ms if run_at_ms is not None else (job.timestamp + job.delay if job.delay else None)
        )
        if state == "delayed"
        else None,
        processed_at=_when(job.processedOn),
        finished_at=_when(job.finishedOn),
        failed_reason=job.failedReason or None,
        priority=int(job.priority or 0),
        options={k: v for k, v in opts.items() if k in ("attempts", "backoff", "delay", "priority", "lifo")},
        stacktrace=[line for line in job.stacktrace or [] if isinstance(line, str)],
        return_value=job.returnvalue,
    )


def _due_ms(score: float | None) -> int | None:
    return int(score) // _DELAY_SCORE_FACTOR if score is not None else None


class QueueInspector:
    def __init__(self, door: RedisDoor, failed_set: FailedSet) -> None:
        self._door = door
        self._failed_set = failed_set

    @staticmethod
    def check_queue(queue: str) -> None:
        if queue not in QUEUE_NAMES:
            raise UnknownQueueError(queue)

    async def page(self, queue: str, state: ListedState, *, limit: int, offset: int = 0) -> JobPage:
        self.check_queue(queue)
        if state not in LISTED_STATES:
            raise ValueError(f"state must be one of {', '.join(LISTED_STATES)}")

        async def read(redis: RedisBackend) -> JobPage:
            q = redis.queue(queue)
            async with asyncio.timeout(redis.budget_s):
                # One more than asked: whether another page follows.
                jobs = await q.getJobs([state], offset, offset + limit, _ASCENDING.get(state, False))
                due: list[int | None] = [None] * len(jobs)
                if state == "delayed" and jobs:
                    scores = await redis.client.zmscore(q.toKey("delayed"), [str(j.id) for j in jobs])
                    due = [_due_ms(score) for score in scores]
            views = [_view(queue, job, state, ms) for job, ms in zip(jobs, due, strict=True)]
            more = len(views) > limit
            return JobPage(views[:limit], offset + limit if more else None)

        return await self._door(read)

    async def get(self, queue: str, job_id: str) -> JobView:
        """The job and its state; `JobNotFoundError` when bullmq has no such job (any more)."""
        self.check_queue(queue)

        async def read(redis: RedisBackend) -> JobView:
            q = redis.queue(queue)
            async with asyncio.timeout(redis.budget_s):
                job = await Job.fromId(q, job_id)
                if job is None:
                    raise JobNotFoundError(queue, job_id)
                state = str(await q.getJobState(job_id))
                due = None
                if state == "delayed":
                    due = _due_ms(await redis.client.zscore(q.toKey("delayed"), job_id))
            return _view(queue, job, state, due)

        return await self._door(read)

    async def find(self, job_id: str) -> list[JobView]:
        """The job with this id in every queue envoi serves (ids are per queue)."""
        found = []
        for queue in QUEUE_NAMES:
            try:
                found.append(await self.get(queue, job_id))
            except JobNotFoundError:
                continue
        return found

    async def state(self, queue: str, job_id: str) -> str:
        self.check_queue(queue)

        async def read(redis: RedisBackend) -> str:
            async with asyncio.timeout(redis.budget_s):
                return str(await redis.queue(queue).getJobState(job_id))

        return await self._door(read)

    async def promote(self, queue: str, job_id: str) -> JobView:
        """Make a delayed job due now (bullmq's promote). `JobStateError` when it is not delayed."""
        view = await self.get(queue, job_id)
        if view.state != "delayed":
            raise JobStateError(job_id, view.state, "only a delayed job can be promoted")

        async def promote(redis: RedisBackend) -> None:
            async with asyncio.timeout(redis.budget_s):
                await redis.queue(queue).backend.promote(job_id)

        try:
            await self._door(promote)
        except TypeError:
            # bullmq's script refused (`finishedErrors`): the job left the delayed set since we looked.
            await self._refused(queue, job_id, "only a delayed job can be promoted")
        return await self.get(queue, job_id)

    async def _refused(self, queue: str, job_id: str, wanted: str) -> None:
        """Raise why bullmq refused an action on a job that changed since it was read."""
        state = await self.state(queue, job_id)
        if state == "unknown":
            raise JobNotFoundError(queue, job_id)
        raise JobStateError(job_id, state, wanted)

    async def cancel(self, queue: str, job_id: str) -> JobView:
        """Remove a job that has not started (waiting, delayed, prioritized); returns it as it was.
        `JobStateError` for a running or finished job: bullmq does not remove a locked job."""
        view = await self.get(queue, job_id)
        if view.state not in CANCELLABLE:
            raise JobStateError(job_id, view.state, "only a waiting or delayed job can be cancelled")

        async def remove(redis: RedisBackend) -> int:
            async with asyncio.timeout(redis.budget_s):
                return int(await redis.queue(queue).remove(job_id))

        if not await self._door(remove):
            await self._refused(queue, job_id, "it started before it could be cancelled")
        return view

    async def set_paused(self, queue: str, paused: bool) -> bool:
        """Pause (no worker takes a new job; running ones finish) or resume the queue, for every worker.
        Returns whether it is paused now."""
        self.check_queue(queue)

        async def toggle(redis: RedisBackend) -> bool:
            q = redis.queue(queue)
            async with asyncio.timeout(redis.budget_s):
                await (q.pause() if paused else q.resume())
                return bool(await q.isPaused())

        return await self._door(toggle)

    async def paused(self, queue: str) -> bool:
        self.check_queue(queue)

        async def read(redis: RedisBackend) -> bool:
            async with asyncio.timeout(redis.budget_s):
                return bool(await redis.queue(queue).isPaused())

        return await self._door(read)

    async def clean(
        self, queue: str, state: Literal["completed", "failed"], *, older_than_ms: int, limit: int
    ) -> CleanResult:
        """Remove up to `limit` jobs finished more than `older_than_ms` ago. Completed jobs go through
        bullmq's clean; failed ones through `FailedSet.clean_recorded`, which keeps every failure the
        dead letters do not hold yet."""
        self.check_queue(queue)
        if state == "failed":
            return await self._failed_set.clean_recorded(queue, older_than_ms=older_than_ms, limit=limit)

        async def clean(redis: RedisBackend) -> CleanResult:
            async with asyncio.timeout(redis.budget_s):
                removed = await redis.queue(queue).clean(older_than_ms, limit, "completed")
            return CleanResult(removed=len(removed or []))

        return await self._door(clean)

    async def workers(self) -> list[WorkerView]:
        """bullmq's worker list for every queue (CLIENT LIST, filtered on the queue's connection names)."""

        async def read(redis: RedisBackend) -> list[WorkerView]:
            now = time.time()
            views: list[WorkerView] = []
            for queue in QUEUE_NAMES:
                async with asyncio.timeout(redis.budget_s):
                    clients = await redis.queue(queue).get_workers()
                views.extend(_workers(queue, clients, now))
            return views

        return await self._door(read)

    async def throughput(self, *, minutes: int) -> list[Minute]:
        """Completed and failed jobs per minute, all queues together, oldest first, ending with the
        current (unfinished) minute. Zero everywhere when no worker counts (WORKER_THROUGHPUT_MINUTES=0)."""

        async def read(redis: RedisBackend) -> list[Minute]:
            now_minute = int(time.time() // 60)
            totals = {kind: [0] * minutes for kind in ("completed", "failed")}
            for queue in QUEUE_NAMES:
                for kind, counts in totals.items():
                    for minute, count in (await _metrics(redis, queue, kind, minutes)).items():
                        index = minutes - 1 - (now_minute - minute)
                        if 0 <= index < minutes:
                            counts[index] += count
            first = now_minute - minutes + 1
            return [
                Minute(
                    _when((first + i) * 60_000) or datetime.now(UTC),
                    totals["completed"][i],
                    totals["failed"][i],
                )
                for i in range(minutes)
            ]

        return await self._door(read)


async def _metrics(redis: RedisBackend, queue: str, kind: str, minutes: int) -> dict[int, int]:
    """Minute (since the epoch) -> count, from bullmq's metrics keys, as Node's `getMetrics` reads them.

    bullmq counts every finished job in `count`; when a job finishes in a later minute than `prevTS`, it
    pushes the count of `prevTS`'s minute (then a zero per idle minute) to the head of the data list. So
    `data[i]` is the minute `prevTS_minute - 1 - i`, and `count - prevCount` is `prevTS`'s own minute,
    still open.
    """
    key = redis.queue(queue).toKey(f"metrics:{kind}")
    async with asyncio.timeout(redis.budget_s):
        pipe = redis.client.pipeline(transaction=True)
        pipe.hmget(key, "count", "prevTS", "prevCount")
        pipe.lrange(f"{key}:data", 0, minutes - 1)
        (count, prev_ts, prev_count), data = await pipe.execute()
    if prev_ts is None:
        return {}
    last = int(int(text(prev_ts) or 0) // 60_000)
    found = {last: int(text(count) or 0) - int(text(prev_count) or 0)}
    for i, value in enumerate(data):
        found[last - 1 - i] = int(text(value) or 0)
    return found


def _workers(queue: str, clients: list[dict[str, Any]], now: float) -> list[WorkerView]:
    """One view per worker: bullmq names both of a worker's connections alike, so they are grouped."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for client in clients:
        raw = str(client.get("rawname") or "")
        if raw:
            groups.setdefault(raw, []).append(client)
    views = []
    for raw, members in sorted(groups.items()):
        _, _, name = raw.partition(":w:")
        match = _WORKER_NAME.match(name)
        ages = [int(c.get("age") or 0) for c in members]
        idles = [int(c.get("idle") or 0) for c in members]
        oldest = members[ages.index(max(ages))]
        views.append(
            WorkerView(
                queue=queue,
                name=name or raw,
                host=match["host"] if match else None,
                pid=int(match["pid"]) if match else None,
                concurrency=int(match["concurrency"]) if match else None,
                address=str(oldest.get("addr")) if oldest.get("addr") else None,
                started_at=datetime.fromtimestamp(now - max(ages), UTC),
                last_seen_at=datetime.fromtimestamp(now - min(idles), UTC),
                connections=len(members),
            )
        )
    return views
