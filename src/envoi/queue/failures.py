"""A bullmq job that failed for the last time, as a `FinalFailure` (used by the worker and the reconciler)."""

from __future__ import annotations

from typing import Any

from bullmq import UnrecoverableError

from envoi.queue.jobs import FinalFailure

#: Job options kept with a dead letter, so that a retry re-creates the job as it was.
KEPT_OPTIONS = ("attempts", "backoff", "delay", "priority", "lifo", "removeOnComplete", "removeOnFail")


def job_options(job: Any) -> dict[str, Any]:
    opts = {key: job.opts[key] for key in KEPT_OPTIONS if key in job.opts}
    opts["jobId"] = str(job.id)
    return opts


def is_final_failure(job: Any, error: BaseException) -> bool:
    """After bullmq's moveToFailed: no attempt left, or an error that forbids retries."""
    return isinstance(error, UnrecoverableError) or job.attemptsMade >= int(job.opts.get("attempts") or 1)


def final_failure(queue: str, job: Any) -> FinalFailure:
    return FinalFailure(
        queue=queue,
        job_name=job.name,
        data=job.data,
        options=job_options(job),
        error_message=job.failedReason or "",
        stacktrace=list(job.stacktrace or []),
        attempts_made=int(job.attemptsMade),
        job_id=str(job.id),
        finished_on=int(job.finishedOn) if job.finishedOn else None,
    )
