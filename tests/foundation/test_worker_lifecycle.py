"""A worker that always starts or fails fast, always stops, and says whether it is alive; real processes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from envoi.config import Settings
from envoi.db.migrate import upgrade
from envoi.embedded_redis import free_port
from envoi.queue.connection import (
    BULLMQ_LONGEST_BLOCK_S,
    WORKER_SOCKET_TIMEOUT_S,
    HiredisConnection,
    WatchedRetry,
)
from envoi.queue.heartbeat import health as worker_health
from envoi.queue.jobs import HandlerRegistry
from envoi.queue.names import NOTIFICATIONS_QUEUE
from envoi.runtime import Envoi
from envoi.worker import SHUTDOWN_GRACE_S
from tests.fixtures.proxy import TcpProxy
from tests.helpers import eventually, process_env

ROOT = Path(__file__).resolve().parents[2]
Spawn = Callable[..., subprocess.Popen[str]]


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The worker's lifecycle does not depend on the database: SQLite only, not once per database."""
    url = f"sqlite:///{tmp_path / 'envoi.db'}"
    upgrade(url)
    return url


@pytest.fixture
def spawn(settings: Settings, processes: Spawn) -> Spawn:
    """Start `python -m <module>` with the test's settings in its environment (plus `env`)."""

    def run(module: str = "tests.foundation.slow_worker", *args: str, **env: str) -> subprocess.Popen[str]:
        values = process_env(settings, WORKER_HEARTBEAT_INTERVAL_S="0.5", **env)
        return processes([sys.executable, "-m", module, *args], env=values)

    return run


async def _exit(proc: subprocess.Popen[str], timeout: float) -> tuple[int, float, str]:
    started = time.monotonic()
    try:
        code = await asyncio.to_thread(proc.wait, timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"still running after {timeout}s: {proc.communicate()[0]}") from None
    return code, time.monotonic() - started, proc.stdout.read() if proc.stdout else ""


async def _enqueue(envoi: Envoi, name: str, tmp_path: Path, seconds: float) -> Path:
    started = tmp_path / f"started-{name}"
    data = {"seconds": seconds, "started": str(started), "done": str(tmp_path / f"done-{name}")}
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, name, data)
    return started


async def test_a_worker_started_with_redis_down_fails_within_the_connect_timeout(spawn: Spawn) -> None:
    proc = spawn("envoi", "worker", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    code, elapsed, output = await _exit(proc, timeout=30)
    assert code == 1, output
    assert "is unreachable" in output
    assert elapsed < 10


async def test_a_worker_starting_against_a_hung_redis_obeys_sigterm(spawn: Spawn) -> None:
    with TcpProxy("127.0.0.1", 9) as hung:
        hung.freeze()
        proc = spawn(
            "envoi", "worker", REDIS_URL=f"redis://127.0.0.1:{hung.port}/0", REDIS_CONNECT_TIMEOUT_MS="60000"
        )
        await eventually(lambda: hung.accepted, timeout=20, message="the worker connecting")
        proc.send_signal(signal.SIGTERM)
        code, elapsed, output = await _exit(proc, timeout=20)
    assert code == 0, output
    assert "SIGTERM received" in output
    assert elapsed < 5


async def test_a_job_longer_than_the_shutdown_timeout_does_not_hold_the_exit(
    spawn: Spawn, make_envoi: Any, settings: Settings, tmp_path: Path
) -> None:
    envoi: Envoi = make_envoi(settings, registry=HandlerRegistry())
    started = await _enqueue(envoi, "SLOW", tmp_path, seconds=120)
    proc = spawn(WORKER_SHUTDOWN_TIMEOUT_S="1")
    await eventually(started.exists, timeout=30, message="the job to start")
    proc.send_signal(signal.SIGTERM)
    code, elapsed, output = await _exit(proc, timeout=30)
    assert code == 0, output
    assert "abandoned" in output and "SLOW" in output
    assert elapsed < 1 + 5, output


async def test_a_second_signal_exits_at_once(
    spawn: Spawn, make_envoi: Any, settings: Settings, tmp_path: Path
) -> None:
    envoi: Envoi = make_envoi(settings, registry=HandlerRegistry())
    started = await _enqueue(envoi, "SLOW", tmp_path, seconds=120)
    proc = spawn(WORKER_SHUTDOWN_TIMEOUT_S="60")
    await eventually(started.exists, timeout=30, message="the job to start")
    proc.send_signal(signal.SIGTERM)
    await asyncio.to_thread(_wait_for_line, proc, "SIGTERM received")
    proc.send_signal(signal.SIGINT)
    code, elapsed, output = await _exit(proc, timeout=10)
    assert code == 128 + signal.SIGINT, output
    assert "SIGINT again: exiting now" in output
    assert elapsed < 3


def _wait_for_line(proc: subprocess.Popen[str], text: str) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:  # bounded by the process: it cannot end without closing its output
        if text in line:
            return
    raise AssertionError(f"the process ended without printing {text!r}")


async def test_a_job_blocking_the_event_loop_cannot_hold_the_exit(
    spawn: Spawn, make_envoi: Any, settings: Settings, tmp_path: Path
) -> None:
    envoi: Envoi = make_envoi(settings, registry=HandlerRegistry())
    started = await _enqueue(envoi, "BLOCK", tmp_path, seconds=120)
    proc = spawn(WORKER_SHUTDOWN_TIMEOUT_S="1")
    await eventually(started.exists, timeout=30, message="the job to start")
    proc.send_signal(signal.SIGTERM)
    code, elapsed, output = await _exit(proc, timeout=60)
    assert code == 1, output
    assert "after the stop signal: exiting now" in output
    assert elapsed < 1 + SHUTDOWN_GRACE_S + 3


async def test_health_is_0_while_a_worker_beats_and_1_once_it_is_gone(
    spawn: Spawn, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(worker_heartbeat_interval_s=0.5)
    proc = spawn("envoi", "worker")

    async def healthy() -> bool:
        return (await worker_health(settings))[0] == 0

    await eventually(healthy, timeout=30, message="the worker's heartbeat")
    code, lines = await worker_health(settings)
    assert f":{proc.pid} alive" in lines[0]
    checker = spawn("envoi", "worker", "--health")
    assert (await _exit(checker, timeout=30))[0] == 0
    # Killed: nothing removes its heartbeat; three missed beats (1.5 s) and it is dead.
    proc.kill()
    await eventually(lambda: _not(healthy), timeout=10, message="the heartbeat to go stale")
    checker = spawn("envoi", "worker", "--health")
    code, _, output = await _exit(checker, timeout=30)
    assert code == 1 and "no worker on" in output


async def _not(probe: Callable[[], Any]) -> bool:
    return not await probe()


async def test_health_is_1_without_redis(make_settings: Callable[..., Settings]) -> None:
    code, [line] = await worker_health(make_settings(redis_url=f"redis://127.0.0.1:{free_port()}/0"))
    assert code == 1 and "did not answer" in line


async def test_worker_connections_bound_every_read_beyond_bullmqs_longest_wait(
    envoi: Envoi, start_worker: Any
) -> None:
    worker = await start_worker(envoi)
    bull = worker._workers[NOTIFICATIONS_QUEUE]
    assert WORKER_SOCKET_TIMEOUT_S > BULLMQ_LONGEST_BLOCK_S >= envoi.settings.worker_drain_delay_s
    # One pooled client for bullmq's commands and its blocking wait: each job's command on a
    # connection of its own, not in turn behind a single connection's lock.
    assert bull.client is bull.bclient and bull.client.single_connection_client is False
    pool = bull.client.connection_pool
    kwargs = pool.connection_kwargs
    assert kwargs["socket_timeout"] == WORKER_SOCKET_TIMEOUT_S
    assert kwargs["socket_keepalive"] is True and kwargs["socket_keepalive_options"]
    assert kwargs["health_check_interval"] > 0
    assert isinstance(kwargs["retry"], WatchedRetry)
    # Every connection the pool opens packs with hiredis (a tenth of a no-op job's CPU in Python).
    assert pool.connection_class is HiredisConnection
    connection = await pool.get_connection()
    try:
        assert type(connection) is HiredisConnection and isinstance(connection.retry, WatchedRetry)
    finally:
        await pool.release(connection)
    assert bull.opts["drainDelay"] <= 4
    # Fractional block timeouts: a retry due in 0.5 s is not rounded up to a whole second.
    assert bull.backend.capabilities["canDoubleTimeout"] is True
