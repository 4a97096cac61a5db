"""Final failures become exactly one row: from the worker, the inline fallback, and the reconciler."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from envoi.dead_letters.recorder import SqlFailureRecorder
from envoi.queue import NOTIFICATIONS_QUEUE
from envoi.queue.jobs import FinalFailure
from envoi.runtime import Envoi
from tests.dead_letters.support import Jobs, reconciler, row_count, rows, until
from tests.helpers import eventually, job_state


async def test_job_failing_five_times_makes_one_row(
    make_settings: Callable[..., Any], make_envoi: Any, start_worker: Any
) -> None:
    jobs = Jobs()
    envoi: Envoi = make_envoi(make_settings(job_backoff_delay_ms=20), registry=jobs.registry)
    await start_worker(envoi)
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "ALWAYS_FAIL", {"to": "jane@example.com"})
    [row] = await until(lambda: rows(envoi), timeout=20, message="the dead letter")
    assert len(jobs.named("ALWAYS_FAIL")) == 5
    assert (row.queue_name, row.job_name, row.job_id) == (NOTIFICATIONS_QUEUE, "ALWAYS_FAIL", result.job_id)
    assert (row.attempts_made, row.error_message, row.status) == (5, "boom 5", "FAILED")
    assert row.job_data == {"to": "jane@example.com"}
    assert row.job_options["attempts"] == 5
    assert row.job_options["backoff"] == {"type": "exponential", "delay": 20}
    assert row.finished_on and len(row.stacktrace) == 5
    # The reconciler sees the same failure in bullmq's failed set and adds nothing.
    assert await reconciler(envoi).reconcile_once(full=True) == 0
    assert await row_count(envoi) == 1


@pytest.mark.parametrize("job_name", ["PERMANENT", "INVALID"])
async def test_unrecoverable_job_makes_one_row_after_one_attempt(
    job_name: str, envoi_with_jobs: tuple[Envoi, Jobs], start_worker: Any
) -> None:
    envoi, jobs = envoi_with_jobs
    await start_worker(envoi)
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, job_name, {})
    [row] = await until(lambda: rows(envoi), message="the dead letter")
    assert row.attempts_made == 1 and len(jobs.named(job_name)) == 1
    expected = "550 no such user" if job_name == "PERMANENT" else "Invalid data for INVALID: to: not an email"
    assert row.error_message == expected


async def test_job_succeeding_on_third_attempt_makes_no_row(
    envoi_with_jobs: tuple[Envoi, Jobs], start_worker: Any
) -> None:
    envoi, jobs = envoi_with_jobs
    await start_worker(envoi)
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "THIRD_TIME", {})
    await eventually(lambda: len(jobs.named("THIRD_TIME")) == 3, message="three attempts")
    await until(lambda: _state_is(envoi, result.job_id, "unknown"), message="the job completed and removed")
    assert await reconciler(envoi).reconcile_once(full=True) == 0
    assert await row_count(envoi) == 0


async def _state_is(envoi: Envoi, job_id: str, state: str) -> bool:
    return await job_state(envoi, NOTIFICATIONS_QUEUE, job_id) == state


async def test_inline_failures_are_recorded_with_their_options(
    make_settings: Callable[..., Any], make_envoi: Any
) -> None:
    jobs = Jobs()
    envoi: Envoi = make_envoi(make_settings(queue_enabled=False), registry=jobs.registry)
    for _ in range(2):
        result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "ALWAYS_FAIL", {"n": 1}, priority=3)
        assert result.succeeded is False
    first, second = await rows(envoi)
    for row in (first, second):
        assert (row.job_id, row.attempts_made, row.error_message) == (None, 1, "boom 1")
        assert row.job_options["attempts"] == 5 and row.job_options["priority"] == 3
        assert row.finished_on is not None
        assert "RuntimeError" in row.stacktrace[0]


async def test_recording_the_same_failure_twice_keeps_one_row(envoi_with_jobs: tuple[Envoi, Jobs]) -> None:
    envoi, _ = envoi_with_jobs
    failure = FinalFailure(
        queue=NOTIFICATIONS_QUEUE,
        job_name="ALWAYS_FAIL",
        data={},
        options={"attempts": 5},
        error_message="boom",
        stacktrace=[],
        attempts_made=5,
        job_id="42",
        finished_on=1_700_000_000_000,
    )
    recorder = SqlFailureRecorder(envoi.db)
    await recorder.record(failure)
    await recorder.record(failure)
    assert await recorder.record_many([failure, failure]) == 0
    assert await row_count(envoi) == 1
    # A later failure of the same job id (bullmq retried it, or a Node producer reused the id) is new.
    later = FinalFailure(**{**_fields(failure), "finished_on": 1_700_000_000_001})
    # Counted on both databases (psycopg gives no rowcount for an INSERT: the count must not rely on it).
    assert await recorder.record_many([later, failure]) == 1
    assert await row_count(envoi) == 2


def _fields(failure: FinalFailure) -> dict[str, Any]:
    return {name: getattr(failure, name) for name in failure.__slots__}


async def test_reconciler_records_what_the_listener_missed(
    envoi_with_jobs: tuple[Envoi, Jobs], start_worker: Any
) -> None:
    envoi, _ = envoi_with_jobs
    # The listener can no longer write (as if the database were down when the job failed).
    envoi.recorders[:] = [r for r in envoi.recorders if not isinstance(r, SqlFailureRecorder)]
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "PERMANENT", {"to": "+33612345678"})
    worker = await start_worker(envoi)
    assert worker.companions, "the reconciler runs beside every worker"
    [row] = await until(lambda: rows(envoi), timeout=10, message="the reconciled dead letter")
    assert (row.job_id, row.job_name, row.attempts_made) == (result.job_id, "PERMANENT", 1)
    assert row.error_message == "550 no such user" and row.job_data == {"to": "+33612345678"}
    assert row.job_options["attempts"] == 5
    assert await reconciler(envoi).reconcile_once(full=True) == 0
    assert await row_count(envoi) == 1


async def test_a_deleted_dead_letter_stays_deleted(
    envoi_with_jobs: tuple[Envoi, Jobs], start_worker: Any
) -> None:
    """bullmq keeps the failed job; neither the running reconciler nor a new worker's records it again."""
    envoi, _ = envoi_with_jobs
    await start_worker(envoi)
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "PERMANENT", {})
    [row] = await until(lambda: rows(envoi), message="the dead letter")
    assert await envoi.dead_letters.delete(row.id)  # at once, well within the reconciler's window
    before = await _watermark(envoi)
    await until(lambda: _watermark_moved(envoi, before), message="a pass of the running reconciler")
    assert await reconciler(envoi).reconcile_once() == 0  # a worker starting
    assert await row_count(envoi) == 0
    assert await job_state(envoi, NOTIFICATIONS_QUEUE, result.job_id) == "failed"


async def _watermark(envoi: Envoi) -> str | None:
    return await envoi.queue.failed_set.watermark(NOTIFICATIONS_QUEUE)


async def _watermark_moved(envoi: Envoi, before: str | None) -> bool:
    return await _watermark(envoi) != before
