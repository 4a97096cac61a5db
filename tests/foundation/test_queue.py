"""The queue service against a real Redis: options, retries, fallback, breaker, recovery, shutdown."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from bullmq import Job

from envoi.embedded_redis import EmbeddedRedis, free_port
from envoi.queue import NOTIFICATIONS_QUEUE, HandlerRegistry, JobContext
from envoi.queue.jobs import FinalFailure
from envoi.runtime import Envoi
from tests.helpers import bull_queue, eventually, job_state


def recording_registry(fail_times: int = 0) -> tuple[HandlerRegistry, list[tuple[float, JobContext]]]:
    """A job `PING` that fails `fail_times` times, then succeeds; every call is recorded with its time."""
    registry = HandlerRegistry()
    calls: list[tuple[float, JobContext]] = []

    @registry.handler("PING")
    async def ping(_data: object, context: JobContext) -> str:
        calls.append((time.monotonic(), context))
        if len(calls) <= fail_times:
            raise RuntimeError(f"failure {len(calls)}")
        return "pong"

    return registry, calls


class Recorder:
    def __init__(self) -> None:
        self.failures: list[FinalFailure] = []

    async def record(self, failure: FinalFailure) -> None:
        self.failures.append(failure)


async def test_default_job_options_are_stored_on_the_job(
    make_settings: Callable[..., Any], make_envoi: Any
) -> None:
    envoi: Envoi = make_envoi(make_settings(job_backoff_delay_ms=30000), registry=HandlerRegistry())
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "PING", {"n": 1})
    assert result.mode == "queued"
    job = await Job.fromId(bull_queue(envoi.queue, NOTIFICATIONS_QUEUE), result.job_id)
    assert job is not None
    assert job.data == {"n": 1}
    assert job.opts["attempts"] == 5
    assert job.opts["backoff"] == {"type": "exponential", "delay": 30000}
    assert job.opts["removeOnComplete"] is True
    assert job.opts["removeOnFail"] is False


async def test_options_can_be_overridden_per_call(envoi: Envoi) -> None:
    result = await envoi.queue.enqueue(
        NOTIFICATIONS_QUEUE, "PING", {}, job_id="custom-1", delay=60, attempts=2, priority=3
    )
    assert result.job_id == "custom-1"
    job = await Job.fromId(bull_queue(envoi.queue, NOTIFICATIONS_QUEUE), "custom-1")
    assert job is not None
    assert (job.opts["attempts"], job.opts["priority"], job.opts["delay"]) == (2, 3, 60000)
    assert await job_state(envoi, NOTIFICATIONS_QUEUE, "custom-1") == "delayed"
    assert await envoi.queue.remove(NOTIFICATIONS_QUEUE, "custom-1") is True
    assert await job_state(envoi, NOTIFICATIONS_QUEUE, "custom-1") == "unknown"
    assert await envoi.queue.remove(NOTIFICATIONS_QUEUE, "custom-1") is False
    assert await envoi.queue.remove(NOTIFICATIONS_QUEUE, "never-existed") is False


async def test_failing_job_is_retried_with_exponential_gaps(
    make_settings: Callable[..., Any], make_envoi: Any, start_worker: Any
) -> None:
    registry, calls = recording_registry(fail_times=3)
    envoi: Envoi = make_envoi(make_settings(job_backoff_delay_ms=500), registry=registry)
    await start_worker(envoi)
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "PING", {})
    await eventually(lambda: len(calls) == 4, timeout=20, message="4 attempts")
    times = [t for t, _ in calls]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # 0.5 s, then 1 s, then 2 s: each gap at least the planned delay, and growing (lower bounds only:
    # how late a pickup may be depends on the machine's load).
    for gap, planned in zip(gaps, (0.5, 1.0, 2.0), strict=True):
        assert gap >= planned * 0.95, (gaps, planned)
    assert gaps[2] > gaps[0]
    assert [c.attempt for _, c in calls] == [1, 2, 3, 4]
    await eventually(lambda: job_state(envoi, NOTIFICATIONS_QUEUE, result.job_id), message="job state")
    # removeOnComplete: the job is gone once it succeeded.
    assert await eventually(
        lambda: _is(job_state(envoi, NOTIFICATIONS_QUEUE, result.job_id), "unknown"), message="job removed"
    )


async def _is(state: Any, expected: str) -> bool:
    return (await state) == expected


async def test_unknown_job_name_fails_at_once_without_retries(envoi: Envoi, start_worker: Any) -> None:
    recorder = Recorder()
    envoi.recorders.append(recorder)
    await start_worker(envoi)
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "NO_SUCH_JOB", {"x": 1})
    await eventually(lambda: recorder.failures, message="final failure recorded")
    failure = recorder.failures[0]
    assert failure.attempts_made == 1
    assert "Unknown job name 'NO_SUCH_JOB'" in failure.error_message
    assert failure.job_id == result.job_id
    assert failure.options["attempts"] == 5
    assert await job_state(envoi, NOTIFICATIONS_QUEUE, result.job_id) == "failed"


async def test_queue_disabled_runs_inline(make_settings: Callable[..., Any], make_envoi: Any) -> None:
    registry, calls = recording_registry()
    envoi: Envoi = make_envoi(make_settings(queue_enabled=False), registry=registry)
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "PING", {"a": 1})
    assert (result.mode, result.succeeded, result.result) == ("sync", True, "pong")
    assert envoi.queue.fallback_active
    assert calls[0][1].data == {"a": 1}
    assert calls[0][1].mode == "sync"


async def test_inline_failure_is_recorded_and_never_raised(
    make_settings: Callable[..., Any], make_envoi: Any
) -> None:
    registry, _ = recording_registry(fail_times=1)
    envoi: Envoi = make_envoi(make_settings(queue_enabled=False), registry=registry)
    recorder = Recorder()
    envoi.recorders.append(recorder)
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "PING", {"a": 1})
    assert (result.mode, result.succeeded) == ("sync", False)
    [failure] = recorder.failures
    assert (failure.job_id, failure.job_name, failure.error_message) == (None, "PING", "failure 1")
    assert failure.options["attempts"] == 5
    assert "RuntimeError" in failure.stacktrace[0]


class CountingServer:
    """A TCP port that accepts connections, counts them and hangs up: a Redis that is not there."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> CountingServer:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


async def test_dead_redis_costs_one_attempt_then_the_breaker_skips_it(
    make_settings: Callable[..., Any], make_envoi: Any
) -> None:
    registry, calls = recording_registry()
    async with CountingServer() as dead:
        settings = make_settings(
            redis_url=f"redis://127.0.0.1:{dead.port}/0", redis_breaker_cooldown_ms=60000
        )
        envoi: Envoi = make_envoi(settings, registry=registry)
        started = time.monotonic()
        first = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "PING", {"i": 0})
        assert time.monotonic() - started < 5, "the first call must be bounded by the connect timeout"
        assert first.mode == "sync" and first.succeeded
        attempts_after_first = dead.connections
        assert attempts_after_first >= 1
        results = [await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "PING", {"i": i}) for i in range(1, 101)]
        assert dead.connections == attempts_after_first, "no connection attempt during the cool-down"
        assert all(r.mode == "sync" and r.succeeded for r in results)
        assert len(calls) == 101
        assert await envoi.queue.remove(NOTIFICATIONS_QUEUE, "anything") is False


async def test_closed_port_runs_inline_quickly(make_settings: Callable[..., Any], make_envoi: Any) -> None:
    registry, calls = recording_registry()
    envoi: Envoi = make_envoi(
        make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0"), registry=registry
    )
    started = time.monotonic()
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "PING", {})
    assert time.monotonic() - started < 5
    assert result.mode == "sync" and len(calls) == 1


async def test_queue_is_used_again_when_redis_comes_back(
    make_settings: Callable[..., Any], make_envoi: Any, tmp_path: Path
) -> None:
    registry, calls = recording_registry()
    redis = EmbeddedRedis(tmp_path / "redis")
    url = redis.start()
    try:
        envoi: Envoi = make_envoi(
            make_settings(redis_url=url, redis_breaker_cooldown_ms=200), registry=registry
        )
        assert (await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "PING", {})).mode == "queued"
        redis.stop()
        assert (await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "PING", {})).mode == "sync"
        assert len(calls) == 1
        redis.start()

        async def queued_again() -> bool:
            return (await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "PING", {})).mode == "queued"

        await eventually(queued_again, timeout=10, interval=0.1, message="enqueue through Redis again")
        assert not envoi.queue.fallback_active
    finally:
        redis.stop()


async def test_delayed_job_is_not_run_inline(make_settings: Callable[..., Any], make_envoi: Any) -> None:
    registry, calls = recording_registry()
    envoi: Envoi = make_envoi(make_settings(queue_enabled=False), registry=registry)
    recorder = Recorder()
    envoi.recorders.append(recorder)
    result = await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "PING", {}, delay=3600)
    assert result.mode == "sync" and result.succeeded is False
    assert calls == []
    assert recorder.failures[0].options["delay"] == 3_600_000


async def test_sigterm_lets_the_running_job_finish(
    make_settings: Callable[..., Any], make_envoi: Any, settings: Any, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "REDIS_URL": settings.redis_url,
        "REDIS_PREFIX": settings.redis_prefix,
        "DATABASE_URL": settings.database_url,
        "WORKER_SHUTDOWN_TIMEOUT_S": "20",
        "WORKER_DRAIN_DELAY_S": "1",
    }
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.foundation.slow_worker"],
        env=env,
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        envoi: Envoi = make_envoi(settings, registry=HandlerRegistry())
        started, done = tmp_path / "started", tmp_path / "done"
        await envoi.queue.enqueue(
            NOTIFICATIONS_QUEUE, "SLOW", {"seconds": 2, "started": str(started), "done": str(done)}
        )
        await eventually(started.exists, timeout=30, message="the job to start")
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, 30)
        output = proc.stdout.read().decode() if proc.stdout else ""
        assert code == 0, output
        assert done.read_text() == "done", output
        # The job may start before start-up has logged its line: the stop is what this test is about.
        assert "Notifications worker stopped" in output
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_a_one_argument_handler_of_the_old_form_still_runs_given_the_context(
    make_settings: Callable[..., Any], make_envoi: Any, start_worker: Any
) -> None:
    registry = HandlerRegistry()
    seen: list[tuple[str, Any]] = []

    async def old_form(ctx: JobContext) -> str:  # as ../shared/bench/peers/apps/envoi_app.py writes them
        seen.append((ctx.mode, ctx.data["i"]))
        return "done"

    with pytest.warns(DeprecationWarning, match="takes one argument"):
        registry.register("OLD", old_form)
    inline: Envoi = make_envoi(make_settings(queue_enabled=False), registry=registry)
    result = await inline.queue.enqueue(NOTIFICATIONS_QUEUE, "OLD", {"i": 1})
    assert (result.succeeded, result.result) == (True, "done")
    queued: Envoi = make_envoi(make_settings(), registry=registry)
    await start_worker(queued)
    await queued.queue.enqueue(NOTIFICATIONS_QUEUE, "OLD", {"i": 2})
    await eventually(lambda: len(seen) == 2, message="the queued job run")
    assert seen == [("sync", 1), ("queued", 2)]
    # A handler of today's form, (payload, ctx), is registered as it is.
    current = recording_registry()[0].get("PING")
    assert current is not None and current.handler.__name__ == "ping"
