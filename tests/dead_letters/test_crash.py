"""Nothing is lost when a worker dies: the reconciler of another worker records what the dead one missed.

The dying worker runs in a subprocess (`tests.dead_letters.worker_proc`) and is killed with SIGKILL; the
surviving worker runs in the test's event loop.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from envoi.config import Settings
from envoi.dead_letters.recorder import SqlFailureRecorder
from envoi.queue import NOTIFICATIONS_QUEUE
from envoi.runtime import Envoi
from tests.dead_letters.support import Jobs, reconciler, row_count, rows, until
from tests.helpers import eventually, job_state, process_env

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def spawn_worker(
    settings: Settings, processes: Callable[..., subprocess.Popen[str]]
) -> Callable[..., subprocess.Popen[str]]:
    def spawn(**env: str) -> subprocess.Popen[str]:
        values = process_env(
            settings,
            WORKER_LOCK_DURATION_MS=str(settings.worker_lock_duration_ms),
            WORKER_STALLED_INTERVAL_MS=str(settings.worker_stalled_interval_ms),
            JOB_BACKOFF_DELAY_MS="20",
            **env,
        )
        return processes([sys.executable, "-m", "tests.dead_letters.worker_proc"], env=values)

    return spawn


async def _wait(proc: subprocess.Popen[str]) -> tuple[int, str]:
    code = await asyncio.to_thread(proc.wait, 30)
    return code, proc.stdout.read() if proc.stdout else ""


async def test_sigkill_between_failed_and_insert_still_ends_with_one_row(
    settings: Settings, make_envoi: Any, start_worker: Any, spawn_worker: Callable[..., Any]
) -> None:
    jobs = Jobs()
    envoi: Envoi = make_envoi(settings, registry=jobs.registry)
    result = await envoi.queue.enqueue(
        NOTIFICATIONS_QUEUE, "ALWAYS_FAIL", {"to": "jane@example.com"}, attempts=2
    )
    proc = spawn_worker(DLQ_TEST_KILL_ON_RECORD="1")
    code, output = await _wait(proc)
    assert code == -9, output
    assert f"killing myself before recording {result.job_id}" in output
    # bullmq has the job as failed; the table has nothing.
    assert await job_state(envoi, NOTIFICATIONS_QUEUE, result.job_id) == "failed"
    assert await row_count(envoi) == 0
    # Any worker that starts (or is running) reconciles.
    await start_worker(envoi)
    [row] = await until(lambda: rows(envoi), timeout=10, message="the reconciled dead letter")
    assert (row.job_id, row.attempts_made, row.error_message) == (result.job_id, 2, "boom 2")
    assert row.job_data == {"to": "jane@example.com"} and row.job_options["attempts"] == 2
    assert await reconciler(envoi).reconcile_once(full=True) == 0
    assert await row_count(envoi) == 1
    assert jobs.calls == []  # the job itself never ran here


async def test_job_stalling_too_often_is_dead_lettered_by_the_reconciler(
    make_settings: Callable[..., Any], make_envoi: Any, start_worker: Any, spawn_worker: Callable[..., Any]
) -> None:
    """maxStalledCount 0: one worker crash mid-job fails the job ("stalled more than allowable limit").

    The surviving worker's SQL recorder is removed, so that the row can only come from the reconciler.
    """
    jobs = Jobs()
    envoi: Envoi = make_envoi(make_settings(worker_max_stalled_count=0), registry=jobs.registry)
    envoi.recorders[:] = [r for r in envoi.recorders if not isinstance(r, SqlFailureRecorder)]
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "CRASH", {})
    code, output = await _wait(spawn_worker(WORKER_MAX_STALLED_COUNT="0"))
    assert code == -9, output
    await start_worker(envoi)
    [row] = await until(lambda: rows(envoi), timeout=20, message="the stalled job's dead letter")
    assert row.job_id == result.job_id
    assert row.error_message == "job stalled more than allowable limit"
    assert jobs.calls == []


async def test_with_the_default_max_stalled_count_a_crash_does_not_dead_letter(
    settings: Settings, make_envoi: Any, start_worker: Any, spawn_worker: Callable[..., Any]
) -> None:
    """WORKER_MAX_STALLED_COUNT=2 (envoi's default): the job stalled once is run again, and succeeds."""
    assert settings.worker_max_stalled_count == 2
    jobs = Jobs()

    @jobs.registry.handler("CRASH")
    async def crash_survived(_data: object, context: Any) -> str:
        jobs.calls.append(context)
        return "ok"

    envoi: Envoi = make_envoi(settings, registry=jobs.registry)
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "CRASH", {})
    code, output = await _wait(spawn_worker())
    assert code == -9, output
    await start_worker(envoi)
    await eventually(lambda: jobs.named("CRASH"), timeout=20, message="the job run again")
    assert await reconciler(envoi).reconcile_once(full=True) == 0
    assert await row_count(envoi) == 0
