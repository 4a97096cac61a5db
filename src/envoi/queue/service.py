"""`QueueService`: enqueue and cancel jobs, through Redis when it answers, inline when it does not.

The fallback is a backend (`InlineBackend`), chosen here and nowhere else: with QUEUE_ENABLED=false
always, otherwise whenever the circuit breaker says Redis is down.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from envoi import metrics
from envoi.config import Settings
from envoi.errors import QueueUnavailableError
from envoi.queue.base import EnqueueResult
from envoi.queue.breaker import CircuitBreaker
from envoi.queue.inline import InlineBackend
from envoi.queue.jobs import FailureRecorder, HandlerRegistry
from envoi.queue.names import QUEUE_NAMES
from envoi.queue.options import default_job_options, merge_options
from envoi.queue.redis_backend import RedisBackend

log = logging.getLogger("envoi.queue")

#: Errors that mean "Redis is not there", as opposed to a bug in the call.
REDIS_DOWN_ERRORS: tuple[type[BaseException], ...] = (OSError, TimeoutError, QueueUnavailableError)

try:  # redis-py's own connection errors do not all derive from OSError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    REDIS_DOWN_ERRORS += (RedisConnectionError, RedisTimeoutError)
except ImportError:  # pragma: no cover
    pass


def _delay_ms(delay: float | timedelta | None) -> int | None:
    if delay is None:
        return None
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
    return max(0, round(seconds * 1000)) or None


class QueueService:
    def __init__(
        self,
        settings: Settings,
        registry: HandlerRegistry,
        recorders: Sequence[FailureRecorder] = (),
    ) -> None:
        self.settings = settings
        self.defaults = default_job_options(settings)
        self.inline = InlineBackend(registry, recorders)
        self.redis: RedisBackend | None = None
        self.breaker = CircuitBreaker(
            cooldown_s=settings.redis_breaker_cooldown_ms / 1000, target=str(settings.redis)
        )
        if settings.queue_enabled:
            self.redis = RedisBackend(settings)
            log.info("Queue enabled with Redis (%s:%s)", settings.redis.host, settings.redis.port)
        else:
            log.info("Queue disabled (QUEUE_ENABLED=false): jobs run synchronously")

    @property
    def fallback_active(self) -> bool:
        """True when jobs run inline right now (queue disabled, or Redis down)."""
        return self.redis is None or self.breaker.is_open

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
        defaults (attempts, backoff, priority, ...). Never raises because Redis is down."""
        if queue not in QUEUE_NAMES:
            raise ValueError(f"unknown queue {queue!r}; expected one of {', '.join(QUEUE_NAMES)}")
        opts = merge_options(self.defaults, {**options, "delay": _delay_ms(delay)})
        started = time.perf_counter()
        result = await self._enqueue(queue, job_name, data, job_id=job_id, options=opts)
        metrics.ENQUEUE_LATENCY.labels(queue, result.mode).observe(time.perf_counter() - started)
        metrics.JOBS_ENQUEUED.labels(queue, job_name, result.mode).inc()
        if result.mode == "sync":
            outcome = "ok" if result.succeeded else "failed"
            metrics.FALLBACK_RUNS.labels(queue, job_name, outcome).inc()
        return result

    async def _enqueue(
        self, queue: str, job_name: str, data: dict[str, Any], *, job_id: str | None, options: dict[str, Any]
    ) -> EnqueueResult:
        if self.redis is not None and self.breaker.allow():
            try:
                result = await self.redis.enqueue(queue, job_name, data, job_id=job_id, options=options)
            except REDIS_DOWN_ERRORS as exc:
                self.breaker.record_failure(exc)
            else:
                self.breaker.record_success()
                return result
        return await self.inline.enqueue(queue, job_name, data, job_id=job_id, options=options)

    async def remove(self, queue: str, job_id: str) -> bool:
        """Remove a waiting or delayed job (a cancelled reminder). False when absent or Redis is down."""
        if self.redis is None or not self.breaker.allow():
            return False
        try:
            removed = await self.redis.remove(queue, job_id)
        except REDIS_DOWN_ERRORS as exc:
            self.breaker.record_failure(exc)
            return False
        self.breaker.record_success()
        return removed

    async def counts(self, queue: str) -> dict[str, int] | None:
        """Jobs per state in one queue; None when there is no Redis to ask."""
        if self.redis is None or not self.breaker.allow():
            return None
        try:
            counts: dict[str, int] = await self.redis.queue(queue).getJobCounts()
        except REDIS_DOWN_ERRORS as exc:
            self.breaker.record_failure(exc)
            return None
        self.breaker.record_success()
        return counts

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.close()
