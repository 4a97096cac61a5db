"""The worker process: a bullmq `Worker` per queue whose processor looks the job name up in the registry.

Retry versus dead letter is decided by the error class (`envoi.errors.is_permanent`), in `_processor`: a
permanent error becomes bullmq's `UnrecoverableError`, so the job fails at once without spending its
attempts; anything else is retried after its backoff, or after the delay it asks for (`envoi.Retry`, a
provider's Retry-After), until its attempts are spent.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from bullmq import UnrecoverableError
from bullmq import Worker as BullWorker

from envoi import metrics
from envoi.errors import QueueUnavailableError, Retry, TransientDeliveryError, is_permanent
from envoi.queue.failures import final_failure, is_final_failure
from envoi.queue.inspect import worker_name
from envoi.queue.jobs import FinalFailure, JobContext
from envoi.queue.names import NOTIFICATIONS_QUEUE
from envoi.queue.service import QueueService
from envoi.runtime import Envoi
from envoi.validation import check_sizes

log = logging.getLogger("envoi.worker")

#: How long close() waits on each of its last steps (a forced close, stragglers) before cancelling.
FORCE_CLOSE_S = 5.0


def _stretch_backoff(job: Any, retry_after_s: float) -> None:
    """Honour a provider's Retry-After when it is longer than the job's own backoff.

    bullmq computes the next delay from `job.opts["backoff"]` in memory when the processor raises, and
    does not write the options back: overriding them here affects this one retry only.
    """
    backoff = job.opts.get("backoff") or {}
    base = int(backoff.get("delay", 0)) if isinstance(backoff, dict) else int(backoff)
    kind = backoff.get("type") if isinstance(backoff, dict) else "fixed"
    planned = base * 2 ** int(job.attemptsMade) if kind == "exponential" else base
    wanted = round(retry_after_s * 1000)
    if wanted > planned:
        job.opts = {**job.opts, "backoff": {"type": "fixed", "delay": wanted}}


async def _check_server(queue: QueueService) -> None:
    """Log what the Redis server lacks (noeviction, persistence); a worker runs anyway."""
    try:
        await queue.server.log_warnings()
    except QueueUnavailableError as exc:
        log.warning("Could not check the Redis server's settings: %s", exc)


def _plan_retry(job: Any, exc: Exception) -> None:
    """When a job that raised a retryable error runs again: after exactly the delay a handler asked for
    with `envoi.Retry(after=...)`, after a provider's Retry-After when longer than the backoff, else after
    the backoff. (Same mechanism as `_stretch_backoff`: this one retry only.)"""
    if isinstance(exc, Retry):
        job.opts = {**job.opts, "backoff": {"type": "fixed", "delay": round(exc.after * 1000)}}
    elif isinstance(exc, TransientDeliveryError) and exc.retry_after:
        _stretch_backoff(job, exc.retry_after)


class Worker:
    """Runs the handlers of `envoi.registry` for jobs taken from Redis."""

    def __init__(
        self,
        envoi: Envoi,
        *,
        queues: Sequence[str] = (NOTIFICATIONS_QUEUE,),
        concurrency: int | None = None,
    ) -> None:
        self.envoi = envoi
        self.settings = envoi.settings
        self.queues = tuple(queues)
        self.concurrency = concurrency or self.settings.worker_concurrency
        self._workers: dict[str, BullWorker] = {}
        self._runs: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Task[Any]] = set()
        #: Coroutines run alongside the worker until it stops (the dead-letter reconciler is one).
        self.companions: list[Callable[[], Coroutine[Any, Any, None]]] = envoi.worker_companions(self.queues)
        self._companion_tasks: list[asyncio.Task[None]] = []

    def worker_options(self) -> dict[str, Any]:
        s = self.settings
        options: dict[str, Any] = {
            # A dict, not a client: bullmq opens two connections from it (one blocks waiting for jobs).
            "connection": s.redis.connection_kwargs(connect_timeout_s=s.redis_connect_timeout_s),
            "prefix": s.redis_prefix,
            "concurrency": self.concurrency,
            "lockDuration": s.worker_lock_duration_ms,
            "stalledInterval": s.worker_stalled_interval_ms,
            "maxStalledCount": s.worker_max_stalled_count,
            "drainDelay": s.worker_drain_delay_s,
            "autorun": False,
            # Names the worker's Redis connections: the admin's worker list shows host, pid, concurrency.
            "name": worker_name(socket.gethostname(), os.getpid(), self.concurrency),
        }
        if s.worker_throughput_minutes:
            # bullmq then counts finished jobs per minute in Redis (the admin page's throughput chart).
            options["metrics"] = {"maxDataPoints": s.worker_throughput_minutes}
        return options

    async def start(self) -> None:
        """Connect and start taking jobs. `QueueUnavailableError` at once when Redis does not answer:
        bullmq's own client would retry for minutes; a supervisor restarting `envoi worker` is clearer."""
        await self.envoi.queue.ping()
        for queue in self.queues:
            worker = BullWorker(queue, self._processor(queue), self.worker_options())
            worker.on("completed", self._on_completed(queue))
            worker.on("failed", self._on_failed(queue))
            worker.on("error", lambda err, *_: log.error("Worker error: %s", err))
            self._workers[queue] = worker
            # Connect (and name the connections) before `run()`: "started" then means Redis answered,
            # and a close right after start cannot race run() into reopening a closed client.
            await worker._ensure_client_names()
            # bullmq learns that Redis takes fractional block timeouts only from the server's version,
            # which its worker never asks for: without this, a retry due in 0.5 s waits for a whole second.
            await worker.blockingRedisConnection.getRedisVersion()
            self._runs.append(asyncio.create_task(worker.run(), name=f"envoi-worker-{queue}"))
        await _check_server(self.envoi.queue)
        self._companion_tasks = [
            asyncio.create_task(
                companion(), name=f"envoi-companion-{getattr(companion, '__qualname__', 'task')}"
            )
            for companion in self.companions
        ]
        log.info(
            "Notifications worker started (queues: %s, concurrency %d)",
            ", ".join(self.queues),
            self.concurrency,
        )

    def _processor(self, queue: str) -> Callable[[Any, str], Awaitable[Any]]:
        registry = self.envoi.registry
        settings = self.settings

        async def process(job: Any, token: str) -> Any:
            context = JobContext(
                queue=queue,
                name=job.name,
                data=job.data if isinstance(job.data, dict) else {"value": job.data},
                job_id=str(job.id),
                attempt=int(job.attemptsMade) + 1,
                max_attempts=int(job.opts.get("attempts") or 1),
                mode="queued",
            )
            started = time.perf_counter()
            try:
                # Any producer's job: too large is a permanent error, before a handler parses it.
                check_sizes(
                    job.name,
                    job.data,
                    max_data_bytes=settings.max_job_data_bytes,
                    max_metadata_bytes=settings.max_metadata_bytes,
                )
                return await registry.run(context)
            except Exception as exc:
                if is_permanent(exc):
                    raise UnrecoverableError(str(exc)) from exc
                _plan_retry(job, exc)
                raise
            finally:
                metrics.JOB_DURATION.labels(queue, job.name).observe(time.perf_counter() - started)

        return process

    def _spawn(self, coro: Awaitable[Any]) -> None:
        # bullmq calls listeners synchronously: an async listener must be scheduled, and kept referenced.
        task = asyncio.ensure_future(coro)
        task.set_name("envoi-record-failure")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _on_completed(self, queue: str) -> Callable[..., None]:
        def listener(job: Any, _result: Any = None, *_: Any) -> None:
            metrics.JOBS_COMPLETED.labels(queue, job.name).inc()

        return listener

    def _on_failed(self, queue: str) -> Callable[..., None]:
        def listener(job: Any, error: BaseException, *_: Any) -> None:
            final = is_final_failure(job, error)
            metrics.JOBS_FAILED.labels(queue, job.name, str(final).lower()).inc()
            level = logging.ERROR if final else logging.INFO
            log.log(level, "Job %s %s (attempt %s) failed: %s", job.name, job.id, job.attemptsMade, error)
            if final:
                self._spawn(self._record(final_failure(queue, job)))

        return listener

    async def _record(self, failure: FinalFailure) -> None:
        for recorder in self.envoi.recorders:
            try:
                await recorder.record(failure)
            except Exception:
                # The reconciler finds what this missed in bullmq's failed set.
                log.exception("Could not record the final failure of job %s", failure.job_id)

    async def close(self, timeout: float | None = None) -> None:
        """Stop taking jobs; let running ones finish for up to `timeout` seconds, then abandon them
        (their locks expire and another worker takes them up again). Always returns: whatever is still
        running FORCE_CLOSE_S after that is cancelled, and named in the log."""
        timeout = self.settings.worker_shutdown_timeout_s if timeout is None else timeout
        for task in self._companion_tasks:
            task.cancel()
        workers = list(self._workers.values())
        graceful = asyncio.ensure_future(
            asyncio.gather(*(w.close() for w in workers), return_exceptions=True)
        )
        done, _ = await asyncio.wait([graceful], timeout=timeout)
        if not done:
            log.warning("Jobs still running after %.0fs: closing the worker anyway", timeout)
            forced = asyncio.ensure_future(
                asyncio.gather(*(w.close(force=True) for w in workers), return_exceptions=True)
            )
            await asyncio.wait([forced], timeout=FORCE_CLOSE_S)
        leftovers = [
            t for t in (graceful, *self._runs, *self._pending, *self._companion_tasks) if not t.done()
        ]
        if leftovers:
            _, still = await asyncio.wait(leftovers, timeout=FORCE_CLOSE_S)
            for task in still:
                log.warning("Still running %.0fs after close, cancelled: %s", FORCE_CLOSE_S, task.get_name())
                task.cancel()
            await asyncio.gather(*still, return_exceptions=True)
        self._workers.clear()
        self._runs.clear()
        log.info("Notifications worker stopped")

    async def run_until_signalled(self) -> None:
        """The `envoi worker` main loop: run until SIGTERM or SIGINT, then close gracefully."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await self.start()
        try:
            await stop.wait()
        finally:
            log.info("Signal received: finishing running jobs")
            await self.close()
