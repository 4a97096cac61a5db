"""`QueueService`: enqueue and cancel jobs, through Redis when it answers, inline when it does not.

The one door to Redis is `on_redis()`: with QUEUE_ENABLED=false, or while the circuit breaker says Redis
is down, it raises `QueueUnavailableError` without touching the network; a Redis error opens the breaker
and raises the same. Each operation decides there what "unavailable" means for it: `enqueue` runs the
job inline (`InlineBackend`, the fallback backend), `remove` and `discard` answer False, `counts` None.

Job ids hold no `:`: Node BullMQ refuses such custom ids ("Custom Id cannot contain :"), so a Node
service could neither re-add nor look up the job. `enqueue` refuses them (`ValueError`) at the call.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from functools import cache, partial
from typing import Any, TypeVar

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from envoi import metrics, tracing
from envoi.config import Settings
from envoi.errors import QueueUnavailableError
from envoi.queue.base import CHUNK_SIZE, BulkJob, EnqueueResult, chunks
from envoi.queue.breaker import CircuitBreaker
from envoi.queue.failed_set import FailedSet
from envoi.queue.inline import InlineBackend
from envoi.queue.inspect import QueueInspector
from envoi.queue.jobs import (
    FailureRecorder,
    FinalFailure,
    HandlerRegistry,
    JobPayload,
    require_object,
    validate_items,
)
from envoi.queue.marks import Marks
from envoi.queue.names import QUEUE_NAMES
from envoi.queue.options import default_job_options, merge_options
from envoi.queue.rate_limits import RateLimiter
from envoi.queue.recipients import RecipientIndex
from envoi.queue.redis_backend import RedisBackend
from envoi.queue.server import ServerCheck
from envoi.validation import check_sizes

log = logging.getLogger("envoi.queue")

T = TypeVar("T")

#: Errors that mean "Redis is not there", as opposed to a bug in the call. redis-py's own connection
#: errors do not all derive from OSError.
REDIS_DOWN_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    RedisConnectionError,
    RedisTimeoutError,
)


def _delay_ms(delay: float | timedelta | None) -> int | None:
    if delay is None:
        return None
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
    return max(0, round(seconds * 1000)) or None


@cache
def _meters(queue: str, job_name: str, mode: str) -> tuple[Any, Any]:
    """The enqueue metrics' children for these labels, looked up once: `labels()` takes a lock and
    builds its key on every call, on the path of every enqueue."""
    return metrics.ENQUEUE_LATENCY.labels(queue, mode), metrics.JOBS_ENQUEUED.labels(queue, job_name, mode)


def _producer_span(operation: str, queue: str, job_name: str) -> contextlib.AbstractContextManager[Any]:
    """The span of an enqueue ("add") or a bulk enqueue ("addBulk"): `add notifications.SEND_EMAIL`."""
    return tracing.span(
        f"{operation} {queue}.{job_name}", kind="producer", attributes=_span_attributes(queue, job_name)
    )


@cache
def _span_attributes(queue: str, job_name: str) -> dict[str, str]:
    """An enqueue span's attributes (OpenTelemetry's messaging conventions), built once per name."""
    return {
        "messaging.system": "bullmq",
        "messaging.operation.type": "send",
        "messaging.destination.name": queue,
        "bullmq.job.name": job_name,
    }


def _same_length(job_ids: Sequence[str] | None, items: Sequence[Any]) -> None:
    if job_ids is not None and len(job_ids) != len(items):
        raise ValueError(f"{len(job_ids)} job ids for {len(items)} items")


class QueueService:
    def __init__(
        self,
        settings: Settings,
        registry: HandlerRegistry,
        recorders: Sequence[FailureRecorder] = (),
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.defaults = default_job_options(settings)
        self.inline = InlineBackend(registry, recorders)
        self._redis: RedisBackend | None = None
        self.breaker = CircuitBreaker(
            cooldown_s=settings.redis_breaker_cooldown_ms / 1000, target=str(settings.redis)
        )
        #: envoi's own keys (`envoi.queue.keys`), each behind named operations.
        self.marks = Marks(self.on_redis)
        self.failed_set = FailedSet(self.on_redis)
        #: Send-rate buckets shared by every worker (RATE_LIMITS).
        self.rate_limits = RateLimiter(self.on_redis)
        #: What envoi needs from the server (noeviction, persistence), logged at start by the doors.
        self.server = ServerCheck(self.on_redis)
        self.recipients = RecipientIndex(self.on_redis, retention_days=settings.recipient_index_days)
        #: What the admin console and `envoi jobs` read and do: jobs in every state, workers, throughput.
        self.inspector = QueueInspector(self.on_redis, self.failed_set)
        if settings.queue_enabled:
            self._redis = RedisBackend(settings)
            log.info("Queue enabled with Redis (%s)", settings.redis)
        else:
            log.info("Queue disabled (QUEUE_ENABLED=false): jobs run synchronously")

    @property
    def enabled(self) -> bool:
        """QUEUE_ENABLED: there is a Redis to use (it may be down right now)."""
        return self._redis is not None

    @property
    def fallback_active(self) -> bool:
        """True when jobs run inline right now (queue disabled, or Redis down)."""
        return self._redis is None or self.breaker.is_open

    async def on_redis(self, op: Callable[[RedisBackend], Awaitable[T]]) -> T:
        """Run `op` on Redis; `QueueUnavailableError` when the queue is disabled, the breaker is open, or
        Redis fails now (which opens the breaker)."""
        if self._redis is None:
            raise QueueUnavailableError("the queue is disabled (QUEUE_ENABLED=false)")
        if not self.breaker.allow():
            raise QueueUnavailableError(f"Redis ({self.settings.redis}) is unreachable")
        try:
            result = await op(self._redis)
        except REDIS_DOWN_ERRORS as exc:
            self.breaker.record_failure(exc)
            raise QueueUnavailableError(
                f"Redis ({self.settings.redis}) is unreachable ({type(exc).__name__})"
            ) from exc
        self.breaker.record_success()
        return result

    async def enqueue(
        self,
        queue: str,
        job_name: str,
        data: dict[str, Any],
        *,
        job_id: str | None = None,
        delay: float | timedelta | None = None,
        **options: Any,
    ) -> EnqueueResult:
        """Add a job. `delay` is in seconds (or a timedelta); other options are bullmq's, overriding the
        defaults (attempts, backoff, priority, ...). The data of a job with a registered model is
        validated here (`InvalidJobDataError`). Never raises because Redis is down.

        Calls made from several tasks in the same event-loop iteration reach Redis together, in one
        bulk add (`envoi.queue.coalesce`); each caller still gets its own id, or its own inline run."""
        payload = self.registry.validate(job_name, data)
        return await self._traced_add(queue, job_name, payload, job_id, delay, options)

    async def enqueue_job(
        self,
        queue: str,
        job: JobPayload,
        *,
        job_id: str | None = None,
        delay: float | timedelta | None = None,
        **options: Any,
    ) -> EnqueueResult:
        """`enqueue` for a job built (and so validated) through its model: `SendEmailJob(...)`."""
        return await self._traced_add(queue, job.JOB_NAME, job.wire(), job_id, delay, options)

    async def _traced_add(
        self,
        queue: str,
        job_name: str,
        payload: dict[str, Any],
        job_id: str | None,
        delay: float | timedelta | None,
        options: dict[str, Any],
    ) -> EnqueueResult:
        with _producer_span("add", queue, job_name) as span:
            job = self._prepare(queue, job_name, payload, job_id=job_id, delay=delay, options=options)
            result = await self._add(job)
            if span is not None:
                span.set_attribute("messaging.message.id", result.job_id)
            return result

    async def enqueue_many(
        self,
        queue: str,
        job_name: str,
        items: Sequence[dict[str, Any]],
        *,
        job_ids: Sequence[str] | None = None,
        delay: float | timedelta | None = None,
        **options: Any,
    ) -> list[EnqueueResult]:
        """Add many jobs of one name, in order: one MULTI/EXEC per chunk of CHUNK_SIZE jobs (bullmq's
        `addBulk`), one result per item in the same order. Every item is checked as `enqueue` checks
        one, all of them before any is added: `InvalidJobDataError` names each bad one by its index
        (`items.3.to`). `job_ids`, when given, has one id per item.

        Never raises because Redis is down: a chunk Redis did not take, and every chunk after it, runs
        inline one job at a time (the fallback of `enqueue`, per job)."""

        def check(index: int) -> BulkJob:
            payload = self.registry.validate(job_name, require_object(job_name, items[index]))
            job_id = job_ids[index] if job_ids is not None else None
            return self._prepare(queue, job_name, payload, job_id=job_id, delay=delay, options=options)

        _same_length(job_ids, items)
        with _producer_span("addBulk", queue, job_name):
            return await self._add_many(validate_items(job_name, len(items), check))

    async def enqueue_jobs(
        self,
        queue: str,
        jobs: Sequence[JobPayload],
        *,
        job_ids: Sequence[str] | None = None,
        delay: float | timedelta | None = None,
        **options: Any,
    ) -> list[EnqueueResult]:
        """`enqueue_many` for jobs built through their models, of any names: `[SendEmailJob(...), ...]`."""

        def check(index: int) -> BulkJob:
            job, job_id = jobs[index], job_ids[index] if job_ids is not None else None
            return self._prepare(queue, job.JOB_NAME, job.wire(), job_id=job_id, delay=delay, options=options)

        _same_length(job_ids, jobs)
        name = jobs[0].JOB_NAME if jobs else "jobs"
        with _producer_span("addBulk", queue, name):
            return await self._add_many(validate_items(name, len(jobs), check))

    def _prepare(
        self,
        queue: str,
        job_name: str,
        payload: dict[str, Any],
        *,
        job_id: str | None,
        delay: float | timedelta | None,
        options: dict[str, Any],
    ) -> BulkJob:
        """The checks every job passes before it goes anywhere (Redis or inline), and its options."""
        if queue not in QUEUE_NAMES:
            raise ValueError(f"unknown queue {queue!r}; expected one of {', '.join(QUEUE_NAMES)}")
        if job_id is not None and ":" in job_id:
            raise ValueError(f"job id {job_id!r} contains ':', which Node BullMQ refuses in a custom id")
        # The worker checks the same limits for any producer's job; refusing here tells the caller.
        check_sizes(
            job_name,
            payload,
            max_data_bytes=self.settings.max_job_data_bytes,
            max_metadata_bytes=self.settings.max_metadata_bytes,
        )
        opts = merge_options(self.defaults, {**options, "delay": _delay_ms(delay)})
        # Here, in the caller's task: the coalescer adds the job from a task of its own.
        tracing.inject(opts)
        return BulkJob(queue=queue, name=job_name, data=payload, job_id=job_id, opts=opts)

    async def _add(self, job: BulkJob) -> EnqueueResult:
        started = time.perf_counter()
        try:
            result = await self.on_redis(lambda redis: redis.enqueue(job))
        except QueueUnavailableError:
            result = await self._inline(job)
        await self._added(job, result, started)
        return result

    async def _add_many(self, jobs: list[BulkJob]) -> list[EnqueueResult]:
        results: list[EnqueueResult] = []
        for chunk in chunks(jobs, CHUNK_SIZE):
            started = time.perf_counter()
            try:
                added = await self.on_redis(partial(RedisBackend.enqueue_many, jobs=chunk))
                log.debug("Bulk add: %d jobs on %s", len(chunk), chunk[0].queue)
            except QueueUnavailableError:
                # Redis did not take this chunk (bullmq adds it in one MULTI/EXEC, all or nothing, and
                # the breaker is open now, so the chunks after it skip Redis too): each job runs inline.
                added = [await self._inline(job) for job in chunk]
            for job, result in zip(chunk, added, strict=True):
                await self._added(job, result, started)
            results.extend(added)
        return results

    async def _inline(self, job: BulkJob) -> EnqueueResult:
        return await self.inline.enqueue(job.queue, job.name, job.data, job_id=job.job_id, options=job.opts)

    async def _added(self, job: BulkJob, result: EnqueueResult, started: float) -> None:
        """After a job went somewhere: the recipient index (a scheduled job) and the metrics."""
        if result.mode == "queued" and job.opts.get("delay"):
            # A scheduled job can be looked for by its recipient (`envoi.queue.recipients`).
            await self.recipients.index(job.queue, result.job_id, job.data)
        latency, enqueued = _meters(job.queue, job.name, result.mode)
        latency.observe(time.perf_counter() - started)
        enqueued.inc()
        if result.mode == "sync":
            outcome = "ok" if result.succeeded else "failed"
            metrics.FALLBACK_RUNS.labels(job.queue, job.name, outcome).inc()

    async def remove(self, queue: str, job_id: str) -> bool:
        """Remove a waiting or delayed job (a cancelled reminder). False when absent or Redis is down."""
        try:
            return await self.on_redis(lambda redis: redis.remove(queue, job_id))
        except QueueUnavailableError:
            return False

    async def discard(self, queue: str, job_ids: Sequence[str]) -> bool:
        """Remove each of `job_ids` that waits or is delayed. True when Redis answered for every one
        (a job that is absent, or running, is left as it is); False when Redis could not be asked."""
        if not job_ids:
            return True

        async def remove_all(redis: RedisBackend) -> None:
            for job_id in job_ids:
                await redis.remove(queue, job_id)

        try:
            await self.on_redis(remove_all)
        except QueueUnavailableError:
            return False
        return True

    async def counts(self, queue: str) -> dict[str, int] | None:
        """Jobs per state in one queue; None when there is no Redis to ask."""
        try:
            return await self.on_redis(lambda redis: redis.counts(queue))
        except QueueUnavailableError:
            return None

    async def ping(self) -> None:
        """Return when Redis answers; `QueueUnavailableError` saying why not."""
        await self.on_redis(lambda redis: redis.ping())

    async def failure_recorded(self, failure: FinalFailure) -> None:
        """After a dead letter's insert: the reconciler's seen mark, and the recipient index."""
        await self.failed_set.mark_recorded(failure)
        if failure.job_id is not None:
            await self.recipients.index(failure.queue, failure.job_id, failure.data)

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.close()
