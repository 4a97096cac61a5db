"""The worker process: a bullmq `Worker` per queue whose processor looks the job name up in the registry.

Retry versus dead letter is decided by the error class (`envoi.errors.is_permanent`), in `_processor`: a
permanent error becomes bullmq's `UnrecoverableError`, so the job fails at once without spending its
attempts; anything else is retried after its backoff, or after the delay it asks for (`envoi.Retry`, a
provider's Retry-After), until its attempts are spent. A `DeferredError` moves the job to bullmq's delayed set until the moment it names, and raises bullmq's
`DelayedError`, so that the job is neither completed nor failed: no attempt is spent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from bullmq import DelayedError, UnrecoverableError
from bullmq import Worker as BullWorker
from redis.asyncio import Redis

from envoi import metrics, shutdown, tracing
from envoi.errors import DeferredError, QueueUnavailableError, Retry, TransientDeliveryError, is_permanent
from envoi.queue import heartbeat
from envoi.queue.connection import (
    WORKER_RUN_RETRY_DELAY_MS,
    WORKER_SOCKET_TIMEOUT_S,
    install_retry,
    new_client,
)
from envoi.queue.failures import final_failure, is_final_failure
from envoi.queue.fetch_next import worker_class
from envoi.queue.inspect import worker_name
from envoi.queue.jobs import FinalFailure, JobContext
from envoi.queue.names import NOTIFICATIONS_QUEUE
from envoi.queue.redis_backend import producer_client
from envoi.queue.service import QueueService
from envoi.runtime import Envoi
from envoi.validation import check_sizes

log = logging.getLogger("envoi.worker")
T = TypeVar("T")

#: How long close() waits on each of its last steps (a forced close, stragglers) before moving on.
FORCE_CLOSE_S = 2.0
#: How long close() gives the removal of the worker's heartbeat.
FORGET_S = 1.0
#: `envoi.shutdown.leave`: how long the last tasks get once everything is closed.
LEAVE_S = 0.5
#: After the first signal, the process exits within WORKER_SHUTDOWN_TIMEOUT_S plus this, whatever runs
#: (the watchdog of `envoi.shutdown`); close() and `shutdown.leave` take 2 x FORCE_CLOSE_S + 1.5 s at most.
SHUTDOWN_GRACE_S = 4 * FORCE_CLOSE_S + 4

#: A postponed job comes back this long after the moment it waits for (a lease's end), not just before.
DEFER_SLACK_MS = 50


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
        fetch_next: bool = True,
    ) -> None:
        self.envoi = envoi
        #: Complete a job and take the next in one script call (`envoi.queue.fetch_next`) on the bullmq
        #: versions that is tested with; False: bullmq's own worker (the benchmark's comparison).
        self.fetch_next = fetch_next
        self.settings = envoi.settings
        self.queues = tuple(queues)
        self.concurrency = concurrency or self.settings.worker_concurrency
        self._workers: dict[str, BullWorker] = {}
        self._runs: list[asyncio.Task[None]] = []
        self._pending: set[asyncio.Task[Any]] = set()
        #: Coroutines run alongside the worker until it stops (the dead-letter reconciler is one).
        self.companions: list[Callable[[], Coroutine[Any, Any, None]]] = envoi.worker_companions(self.queues)
        self._companion_tasks: list[asyncio.Task[None]] = []
        #: This process in the heartbeat set (`envoi.queue.heartbeat`).
        self.name = heartbeat.worker_name()
        #: Clients whose pools bullmq's clients borrow (Sentinel): closed after the bullmq workers.
        self._owned_clients: list[Redis] = []

    def worker_options(self) -> dict[str, Any]:
        s = self.settings
        kwargs = s.redis.connection_kwargs(
            connect_timeout_s=s.redis_connect_timeout_s, socket_timeout_s=WORKER_SOCKET_TIMEOUT_S
        )
        # A client with a pool, not a dict of options: from a dict, bullmq makes single-connection
        # clients, which redis-py runs one command at a time behind a lock, so the `concurrency` jobs
        # of a worker waited in turn for each other's completion (a third of the process idle on no-op
        # jobs, the same rate at concurrency 10 as at 200: docs/benchmarks.md). Over a pool each job's
        # command goes at once on a connection of its own, the blocking wait for jobs on another.
        # Under Sentinel the pool also matters: redis-py reconnects a single connection to the address
        # it had (the dead master), where a pooled connection asks the sentinels on each connect.
        connection = new_client(s.redis, decode_responses=True, **kwargs)
        self._owned_clients.append(connection)
        options: dict[str, Any] = {
            "connection": connection,
            "prefix": s.redis_prefix,
            "concurrency": self.concurrency,
            "lockDuration": s.worker_lock_duration_ms,
            "stalledInterval": s.worker_stalled_interval_ms,
            "maxStalledCount": s.worker_max_stalled_count,
            "drainDelay": s.worker_drain_delay_s,
            "runRetryDelay": WORKER_RUN_RETRY_DELAY_MS,
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
        bull_worker = worker_class() if self.fetch_next else BullWorker
        for queue in self.queues:
            worker = bull_worker(queue, self._processor(queue), self.worker_options())
            install_retry(worker.client, f"{queue} worker")  # also its blocking client: the same one
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
        if self.envoi.unsubscribe_tokens is None:
            # Said where marketing emails are sent, not by every command that builds an Envoi.
            log.warning("UNSUBSCRIBE_SECRET is unset: marketing emails go without an unsubscribe link")
        self._companion_tasks = [
            asyncio.create_task(
                companion(), name=f"envoi-companion-{getattr(companion, '__qualname__', 'task')}"
            )
            for companion in (*self.companions, self._heartbeat)
        ]
        log.info(
            "Notifications worker started (queues: %s, concurrency %d)",
            ", ".join(self.queues),
            self.concurrency,
        )

    async def _heartbeat(self) -> None:
        """Beat on the worker's own client (see `envoi.queue.heartbeat`) until cancelled."""
        client = next(iter(self._workers.values())).client
        while True:
            try:
                await heartbeat.beat(client, self.settings.redis_prefix, self.name)
            except Exception as exc:
                # The connection's own watch logs the outage; this says what it costs.
                log.debug("Heartbeat not written: %s", exc)
            await asyncio.sleep(self.settings.worker_heartbeat_interval_s)  # a period, not a wait on state

    def _processor(self, queue: str) -> Callable[[Any, str], Awaitable[Any]]:
        registry = self.envoi.registry
        settings = self.settings
        # One histogram child per job name, looked up once: `labels()` takes a lock and builds a key
        # on every call, a visible share of a no-op job's time in the profile (docs/benchmarks.md).
        durations = _by_name(lambda name: metrics.JOB_DURATION.labels(queue, name))

        async def process(job: Any, token: str) -> Any:
            context = JobContext(
                queue=queue,
                name=job.name,
                data=job.data if isinstance(job.data, dict) else {"value": job.data},
                job_id=str(job.id),
                created_at_ms=int(job.timestamp),
                attempt=int(job.attemptsMade) + 1,
                max_attempts=int(job.opts.get("attempts") or 1),
                mode="queued",
            )
            started = time.perf_counter()
            if not tracing.enabled():
                return await run(job, token, context, started)
            # The producer's trace goes on here (bullmq-otel's `tm` option), or a new one starts.
            with tracing.span(
                f"process {queue}.{job.name}",
                kind="consumer",
                parent=tracing.extract(job.opts),
                attributes=_job_attributes(queue, job, context.attempt),
                expected=(DelayedError,),
            ):
                return await run(job, token, context, started)

        async def run(job: Any, token: str, context: JobContext, started: float) -> Any:
            try:
                # Any producer's job: too large is a permanent error, before a handler parses it.
                check_sizes(
                    job.name,
                    job.data,
                    max_data_bytes=settings.max_job_data_bytes,
                    max_metadata_bytes=settings.max_metadata_bytes,
                )
                return await registry.run(context)
            except DeferredError as exc:
                # Not an attempt: back to bullmq's delayed set until then, attempts untouched.
                log.info("Job %s %s postponed: %s", job.name, job.id, exc)
                await job.moveToDelayed(exc.until_ms + DEFER_SLACK_MS, token)
                raise DelayedError(str(exc)) from exc
            except Exception as exc:
                if is_permanent(exc):
                    raise UnrecoverableError(str(exc)) from exc
                _plan_retry(job, exc)
                raise
            finally:
                durations(job.name).observe(time.perf_counter() - started)

        return process

    def _spawn(self, coro: Awaitable[Any]) -> None:
        # bullmq calls listeners synchronously: an async listener must be scheduled, and kept referenced.
        task = asyncio.ensure_future(coro)
        task.set_name("envoi-record-failure")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    def _on_completed(self, queue: str) -> Callable[..., None]:
        completed = _by_name(lambda name: metrics.JOBS_COMPLETED.labels(queue, name))

        def listener(job: Any, _result: Any = None, *_: Any) -> None:
            completed(job.name).inc()

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
        """Stop taking jobs; let running ones finish for up to `timeout` seconds (default
        WORKER_SHUTDOWN_TIMEOUT_S), then abandon them: their locks expire and another worker takes them
        up. Always returns, within `timeout` + 2 x FORCE_CLOSE_S + 1 s: every step is bounded, and
        whatever is still running at the end is named in the log. (A job may ignore its cancellation for
        a while, an SMTP client saying QUIT for instance: `envoi.shutdown.leave` ends the process
        without it.)"""
        timeout = self.settings.worker_shutdown_timeout_s if timeout is None else timeout
        for task in self._companion_tasks:
            task.cancel()
        workers = list(self._workers.items())
        closing = [asyncio.create_task(w.close(), name=f"envoi-close-{q}") for q, w in workers]
        recording = list(self._pending)  # dead letters being written: as long as the jobs
        if closing or recording:
            await asyncio.wait([*closing, *recording], timeout=timeout)
        running = [task for task in closing if not task.done()]
        forced: list[asyncio.Task[Any]] = []
        if running:
            jobs = [f"{job.name} {job.id}" for _, w in workers for job, _token in list(w.jobs)]
            log.warning(
                "Jobs still running after %gs, abandoned (another worker takes them up once their lock "
                "expires): %s",
                timeout,
                ", ".join(jobs) or "none",
            )
            forced = [
                asyncio.create_task(w.close(force=True), name=f"envoi-force-close-{q}") for q, w in workers
            ]
            _, stuck = await asyncio.wait([*running, *forced], timeout=FORCE_CLOSE_S)
            for task in stuck:
                # bullmq's close waits for its jobs; a job that ignores its cancellation holds it.
                log.warning(
                    "%s still running %gs after the forced close, left behind", task.get_name(), FORCE_CLOSE_S
                )
        await self._forget(workers)
        await _finish([*self._runs, *self._pending, *self._companion_tasks])
        for client in self._owned_clients:
            with contextlib.suppress(Exception):
                await client.aclose()
        self._owned_clients.clear()
        for task in (*closing, *forced):
            _log_failure(task)
        self._workers.clear()
        self._runs.clear()
        log.info("Notifications worker stopped")

    async def _forget(self, workers: list[tuple[str, BullWorker]]) -> None:
        """Remove this worker's heartbeat, so that `--health` says at once that it is gone."""
        if not workers:
            return
        client = producer_client(self.settings)
        try:
            async with asyncio.timeout(FORGET_S):
                await heartbeat.forget(client, self.settings.redis_prefix, self.name)
        except Exception as exc:
            log.debug("Heartbeat not removed (it expires by itself): %s", exc)
        finally:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def run_until_signalled(self) -> None:
        """The `envoi worker` main loop: run until SIGTERM or SIGINT, then close gracefully.

        A second SIGTERM/SIGINT exits at once; so does a shutdown that overruns its bound (a watchdog
        thread, which works even when a job blocks the event loop). A signal during start-up stops it.
        """
        stop = asyncio.Event()
        shutdown.on_first_signal(
            stop.set, deadline_s=self.settings.worker_shutdown_timeout_s + SHUTDOWN_GRACE_S
        )
        starting = asyncio.create_task(self.start(), name="envoi-worker-start")
        signalled = asyncio.create_task(stop.wait(), name="envoi-worker-stop")
        await asyncio.wait([starting, signalled], return_when=asyncio.FIRST_COMPLETED)
        try:
            if starting.done():
                starting.result()  # start-up failed: raise it (after closing what was opened)
                log.info("Waiting for jobs (SIGTERM or SIGINT to stop)")
                await signalled
            else:
                log.info("Signal received during start-up: stopping")
                starting.cancel()
                await asyncio.wait([starting], timeout=FORCE_CLOSE_S)
        finally:
            signalled.cancel()
            await self.close()


def _job_attributes(queue: str, job: Any, attempt: int) -> dict[str, str | int]:
    """A job span's attributes (OpenTelemetry's messaging conventions); never the job's data."""
    return {
        "messaging.system": "bullmq",
        "messaging.operation.type": "process",
        "messaging.destination.name": queue,
        "messaging.message.id": str(job.id),
        "bullmq.job.name": str(job.name),
        "bullmq.job.attempt": attempt,
    }


def _by_name(make: Callable[[str], T]) -> Callable[[str], T]:
    """`make(name)`, memoised: a metric's child per job name (names are few: the registry's)."""
    made: dict[str, T] = {}

    def get(name: str) -> T:
        found = made.get(name)
        if found is None:
            found = made[name] = make(name)
        return found

    return get


async def _finish(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel envoi's own unfinished tasks and give them FORCE_CLOSE_S; name in the log any that still
    runs. Exceptions are logged, never raised: stopping must not fail half-way."""
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        _, left = await asyncio.wait(pending, timeout=FORCE_CLOSE_S)
        for task in left:
            log.warning(
                "%s still running %gs after its cancellation, left behind", task.get_name(), FORCE_CLOSE_S
            )
    for task in tasks:
        _log_failure(task)


def _log_failure(task: asyncio.Task[Any]) -> None:
    if task.done() and not task.cancelled() and task.exception() is not None:
        log.warning("%s ended with %r", task.get_name(), task.exception())
