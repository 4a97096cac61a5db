"""bullmq's `Worker`, completing a job and taking the next one in the same script call.

Node BullMQ's worker passes `fetchNext` to `moveToFinished` when a job completes: the Lua script that
marks the job completed also moves the next waiting job to active, locks it with the same token and
returns it (`moveToFinished-14.lua`, `fetchNextJob`), which is what `moveToActive` does on its own. The
Python worker's `processJob` passes `fetch_next=False` and calls `moveToActive` again: two script calls
per job. `FetchNextWorker` overrides `processJob` only; the rest (main loop, lock renewal, stalled
checks, pause, close) is bullmq's.

Each slot of the main loop runs a chain: run the job, complete it while asking for the next, run that
one in the same task, until no job comes back (queue drained, paused, rate-limited, delayed jobs only) or
the worker is closing or pausing; the slot then ends and bullmq's loop refills it as usual (`moveToActive`,
or its blocking wait when drained). Running the next job in the same task, rather than handing it back
to the main loop, also keeps it inside the set of tasks that `close()` waits for: a job fetched just as
the close begins is run within the grace period instead of being left locked until it stalls.

The override copies the body of bullmq's `processJob` (3.4.4) and reads its internals (`lockManager`,
`_processor_wants_signal`, `backend`): it is used only with the versions in `TESTED_BULLMQ_VERSIONS`
(`worker_class`); any other version gets bullmq's own worker and a warning.
"""

from __future__ import annotations

import logging
import time
from importlib.metadata import version
from typing import Any

from bullmq import Job, UnrecoverableError
from bullmq import Worker as BullWorker
from bullmq.custom_errors import DelayedError, WaitingChildrenError

log = logging.getLogger("envoi.worker")

#: bullmq versions whose `Worker.processJob` this module's copy matches, checked by the Node interop
#: tests and tests/foundation/test_fetch_next.py (which also checks that the installed version is here).
TESTED_BULLMQ_VERSIONS = frozenset({"3.4.4"})


class FetchNextWorker(BullWorker):  # type: ignore[misc]  # bullmq ships no type hints
    """A bullmq `Worker` whose completions fetch the next job (one script call per job)."""

    async def processJob(self, job: Job, token: str) -> None:
        current: Job | None = job
        while current is not None:
            current = await self._run(current, token)

    async def _run(self, job: Job, token: str) -> Job | None:
        """bullmq's `processJob`, with `fetch_next` when the worker is neither closing nor pausing
        (Node's condition); returns the job that came back with the completion, if any."""
        fetch = False
        moved: Any = None
        try:
            if "removeOnComplete" not in job.opts and "removeOnComplete" in self.opts:
                job.opts["removeOnComplete"] = self.opts["removeOnComplete"]
            if "removeOnFail" not in job.opts and "removeOnFail" in self.opts:
                job.opts["removeOnFail"] = self.opts["removeOnFail"]
            self.jobs.add((job, token))
            controller = self.lockManager.track_job(
                job.id,
                token,
                int(time.time() * 1000),
                should_create_controller=self._processor_wants_signal,
            )
            if job.deferredFailure:
                await job.moveToFailed(UnrecoverableError(job.deferredFailure), token)
                self.emit("failed", job, UnrecoverableError(job.deferredFailure))
                return None
            if controller is not None:
                result = await self.processor(job, token, controller.signal)
            else:
                result = await self.processor(job, token)
            if not self.forceClosing:
                fetch = not (self.closing or self.paused)
                moved = await self.backend.moveToCompleted(
                    job, result, job.opts.get("removeOnComplete", False), token, fetch_next=fetch
                )
                job.returnvalue = result
                job.attemptsMade = job.attemptsMade + 1
            self.emit("completed", job, result)
        except (DelayedError, WaitingChildrenError):
            return None
        except Exception as err:
            try:
                if not self.forceClosing:
                    await job.moveToFailed(err, token)
                self.emit("failed", job, err)
            except Exception as err2:
                self.emit("error", err2, job)
            return None
        finally:
            self.jobs.discard((job, token))
            self.lockManager.untrack_job(job.id)
        if not fetch or moved is None:
            return None
        return await self._next(moved["result"], token)

    async def _next(self, raw: Any, token: str) -> Job | None:
        """The job `moveToFinished` returned, as `getNextJob` builds one from `moveToActive`'s reply
        (same 4-item shape); a reply without a job updates the drained, rate-limit and delay state."""
        job_data, job_id, limit_until, delay_until = raw or (None, None, 0, 0)
        try:
            job = await self.nextJobFromJobData(job_data, job_id, limit_until or 0, delay_until or 0, token)
        except Exception as err:
            # As bullmq's loop does when `moveToActive` fails: the job (locked) is taken up again by the
            # stalled-job check once its lock expires.
            self.emit("error", err)
            return None
        if job is not None:
            self.emit("active", job, "waiting")
        return job


def worker_class(installed: str | None = None) -> type[BullWorker]:
    """`FetchNextWorker` on a tested bullmq version (the installed one unless `installed` is given);
    bullmq's own worker otherwise, with a warning."""
    installed = installed or version("bullmq")
    if installed in TESTED_BULLMQ_VERSIONS:
        return FetchNextWorker
    log.warning(
        "bullmq %s is not among the versions envoi's worker was tested with (%s): using bullmq's own "
        "worker, two script calls per job instead of one",
        installed,
        ", ".join(sorted(TESTED_BULLMQ_VERSIONS)),
    )
    stock: type[BullWorker] = BullWorker
    return stock
