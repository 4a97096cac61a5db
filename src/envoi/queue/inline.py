"""The inline backend: the synchronous fallback. The handler runs now, in the caller's task.

A failure never reaches the caller: it is logged and handed to the failure recorders (the dead-letter
queue), with the options the job would have had in Redis. A `DeferredError` (another run is sending
the same message) is waited out when it ends within INLINE_DEFER_WAIT_S, else it is such a failure.
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Sequence
from typing import Any

from envoi.db.types import new_id
from envoi.errors import DeferredError
from envoi.queue.base import EnqueueResult
from envoi.queue.jobs import FailureRecorder, FinalFailure, HandlerRegistry, JobContext

log = logging.getLogger("envoi.queue")

#: How long an inline run waits for another run's lease on its message before giving up (a failure).
INLINE_DEFER_WAIT_S = 5.0


class InlineBackend:
    def __init__(self, registry: HandlerRegistry, recorders: Sequence[FailureRecorder]) -> None:
        self.registry = registry
        self.recorders = recorders

    async def enqueue(
        self, queue: str, job_name: str, data: dict[str, Any], *, job_id: str | None, options: dict[str, Any]
    ) -> EnqueueResult:
        run_id = job_id or f"sync-{new_id()}"
        if options.get("delay"):
            # A reminder due tomorrow must not be sent now; it goes to the dead letters, retryable.
            await self._record(
                queue, job_name, data, options, "Queue unavailable: delayed job not scheduled", []
            )
            return EnqueueResult(job_id=run_id, job_name=job_name, queue=queue, mode="sync", succeeded=False)
        context = JobContext(
            queue=queue,
            name=job_name,
            data=data,
            job_id=run_id,
            created_at_ms=int(time.time() * 1000),
            attempt=1,
            max_attempts=1,
            mode="sync",
        )
        try:
            result = await self._run(context)
        except Exception as exc:
            log.warning("Inline job %s failed: %s", job_name, exc)
            await self._record(queue, job_name, data, options, str(exc), [traceback.format_exc()])
            return EnqueueResult(job_id=run_id, job_name=job_name, queue=queue, mode="sync", succeeded=False)
        return EnqueueResult(
            job_id=run_id, job_name=job_name, queue=queue, mode="sync", succeeded=True, result=result
        )

    async def _run(self, context: JobContext) -> Any:
        """Run the handler; a deferral is waited out once if it ends within INLINE_DEFER_WAIT_S (the
        caller is waiting), else it is a failure like any other: a dead letter, retryable."""
        try:
            return await self.registry.run(context)
        except DeferredError as exc:
            wait = exc.seconds_left()
            if wait > INLINE_DEFER_WAIT_S:
                raise
            log.info("Inline job %s deferred: waiting %.1fs", context.name, wait)
            await asyncio.sleep(wait)  # the other run's lease ends then: a deadline, not a guess
            return await self.registry.run(context)

    async def _record(
        self,
        queue: str,
        job_name: str,
        data: dict[str, Any],
        options: dict[str, Any],
        message: str,
        stacktrace: list[str],
    ) -> None:
        failure = FinalFailure(
            queue=queue,
            job_name=job_name,
            data=data,
            options=options,
            error_message=message,
            stacktrace=stacktrace,
            attempts_made=1,
        )
        for recorder in self.recorders:
            try:
                await recorder.record(failure)
            except Exception:
                log.exception("Could not record the failure of inline job %s", job_name)
