"""A worker process for the crash tests (run as `python -m tests.dead_letters.worker_proc`).

- job `CRASH` kills the process with SIGKILL in the middle of the job (a worker that dies mid-job);
- job `ALWAYS_FAIL` raises; with DLQ_TEST_KILL_ON_RECORD=1 the process kills itself with SIGKILL as soon
  as the worker starts recording the final failure, after bullmq marked the job failed and before the
  row is inserted.
"""

from __future__ import annotations

import asyncio
import os
import signal

from envoi.cli import configure_logging
from envoi.config import load_settings
from envoi.queue.jobs import FinalFailure, HandlerRegistry, JobContext
from envoi.runtime import Envoi
from envoi.worker import Worker

registry = HandlerRegistry()


@registry.handler("CRASH")
async def crash(_data: object, context: JobContext) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


@registry.handler("ALWAYS_FAIL")
async def always_fail(_data: object, context: JobContext) -> None:
    raise RuntimeError(f"boom {context.attempt}")


class KillingRecorder:
    async def record(self, failure: FinalFailure) -> None:
        print(f"killing myself before recording {failure.job_id}", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)


async def main() -> None:
    configure_logging()
    envoi = Envoi(load_settings(), registry=registry)
    if os.environ.get("DLQ_TEST_KILL_ON_RECORD") == "1":
        envoi.recorders.insert(0, KillingRecorder())
    worker = Worker(envoi)
    # This process must not reconcile: the test checks that another worker's reconciler does.
    worker.companions.clear()
    try:
        await worker.run_until_signalled()
    finally:
        await envoi.close()


if __name__ == "__main__":
    asyncio.run(main())
