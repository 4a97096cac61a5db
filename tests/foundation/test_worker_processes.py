"""`envoi worker --processes N`: a supervisor that starts a dead worker process again (without spinning),
stops them all on SIGTERM and says in its exit status whether they stopped in time; real processes."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from envoi.cli import app
from envoi.cli.supervisor import KILL_MARGIN_S
from envoi.config import Settings
from envoi.db.migrate import upgrade
from envoi.embedded_redis import free_port
from envoi.queue.heartbeat import beats
from envoi.queue.jobs import HandlerRegistry
from envoi.queue.names import NOTIFICATIONS_QUEUE
from envoi.queue.redis_backend import producer_client
from envoi.runtime import Envoi
from envoi.worker import SHUTDOWN_GRACE_S
from tests.helpers import eventually, process_env

Spawn = Callable[..., subprocess.Popen[str]]
JOBS = "tests.foundation.supervised_jobs"
HEARTBEAT_S = 0.5


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The supervisor does not depend on the database: SQLite only, not once per database."""
    url = f"sqlite:///{tmp_path / 'envoi.db'}"
    upgrade(url)
    return url


@pytest.fixture
def supervisor(settings: Settings, processes: Spawn) -> Spawn:
    """`envoi worker --processes N --jobs JOBS` with the test's settings (plus `env`)."""

    def run(count: int, **env: str) -> subprocess.Popen[str]:
        values = process_env(
            settings,
            **{"WORKER_HEARTBEAT_INTERVAL_S": str(HEARTBEAT_S), "WORKER_RESTART_BACKOFF_S": "0.1", **env},
        )
        argv = [sys.executable, "-m", "envoi", "worker", "--processes", str(count), "--jobs", JOBS]
        return processes(argv, env=values)

    return run


LivePids = Callable[[], Awaitable[set[int]]]


@pytest.fixture
async def live_pids(settings: Settings) -> AsyncIterator[LivePids]:
    """The worker processes of this host whose heartbeat is fresh, read over one client kept for the
    test: a new connection for each poll (every 20 ms) once timed out connecting under a loaded CI."""
    client = producer_client(settings)

    async def read() -> set[int]:
        found = await beats(client, settings.redis_prefix, host=socket.gethostname(), interval_s=HEARTBEAT_S)
        return {int(beat.name.rpartition(":")[2]) for beat in found}

    yield read
    await client.aclose()


def _gone(pid: int) -> bool:
    """No such process, or a zombie (an orphan that ended, not yet reaped by whoever adopted it)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


async def _exit(proc: subprocess.Popen[str], timeout: float) -> tuple[int, str]:
    try:
        code = await asyncio.to_thread(proc.wait, timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(f"still running after {timeout}s: {proc.communicate()[0]}") from None
    return code, proc.stdout.read() if proc.stdout else ""


async def _touch_all(envoi: Envoi, tmp_path: Path, tag: str, count: int) -> list[Path]:
    paths = [tmp_path / f"{tag}-{i}" for i in range(count)]
    for path in paths:
        await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "TOUCH", {"path": str(path)})
    return paths


@pytest.mark.parametrize("count", ["0", "-1", "x"])
def test_a_bad_process_count_is_refused_with_a_message(count: str) -> None:
    result = CliRunner().invoke(app, ["worker", "--processes", count])
    assert result.exit_code == 2
    assert "--processes" in result.output


async def test_a_killed_worker_process_is_replaced_and_sigterm_stops_them_all(
    live_pids: LivePids, supervisor: Spawn, settings: Settings, make_envoi: Any, tmp_path: Path
) -> None:
    envoi: Envoi = make_envoi(settings, registry=HandlerRegistry())
    proc = supervisor(2)

    async def two_workers() -> bool:
        return len(await live_pids()) == 2

    await eventually(two_workers, timeout=60, message="two worker processes beating")
    first = await live_pids()
    victim = min(first)
    os.kill(victim, signal.SIGKILL)

    async def replaced() -> bool:
        return bool(await live_pids() - first)

    await eventually(replaced, timeout=60, message="a new worker process")
    await eventually(lambda: _gone(victim), timeout=10, message="the killed process reaped")
    children = (await live_pids()) - {victim}
    assert len(children) == 2

    paths = await _touch_all(envoi, tmp_path, "after-kill", 20)
    await eventually(lambda: all(p.exists() for p in paths), timeout=30, message="the jobs done")
    assert {int(p.read_text()) for p in paths} <= children

    proc.send_signal(signal.SIGTERM)
    code, output = await _exit(proc, timeout=30)
    assert code == 0, output
    assert "SIGTERM received: stopping 2 worker process(es)" in output
    assert re.search(rf"Worker process \d \(pid {victim}\) exited with status -9; starting another", output)
    assert output.count("Notifications worker stopped") == 2, output
    assert all(_gone(pid) for pid in children)


async def test_a_worker_process_that_cannot_stop_in_time_makes_the_supervisor_exit_1(
    live_pids: LivePids, supervisor: Spawn, settings: Settings, make_envoi: Any, tmp_path: Path
) -> None:
    envoi: Envoi = make_envoi(settings, registry=HandlerRegistry())
    proc = supervisor(2, WORKER_SHUTDOWN_TIMEOUT_S="1")

    async def two_workers() -> bool:
        return len(await live_pids()) == 2

    await eventually(two_workers, timeout=60, message="two worker processes beating")
    started = tmp_path / "started"
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "BLOCK", {"started": str(started), "seconds": 120})
    await eventually(started.exists, timeout=60, message="the blocking job to start")
    proc.send_signal(signal.SIGTERM)
    code, output = await _exit(proc, timeout=1 + SHUTDOWN_GRACE_S + KILL_MARGIN_S + 10)
    assert code == 1, output
    blocked = int(started.read_text())
    assert "after the stop signal: exiting now" in output
    assert re.search(r"Worker process \d did not stop cleanly \(status 1\)", output), output
    assert "Notifications worker stopped" in output  # the other one did
    assert _gone(blocked)


async def test_a_crash_loop_is_slowed_by_a_doubling_backoff(supervisor: Spawn) -> None:
    proc = supervisor(
        1,
        REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        REDIS_CONNECT_TIMEOUT_MS="200",
        WORKER_RESTART_BACKOFF_S="0.2",
        WORKER_RESTART_BACKOFF_MAX_S="0.8",
    )
    delays = await asyncio.wait_for(asyncio.to_thread(_restart_delays, proc, 4), timeout=90)
    assert delays == ["0.2", "0.4", "0.8", "0.8"]
    proc.send_signal(signal.SIGTERM)
    code, output = await _exit(proc, timeout=20)
    assert code == 0, output


def _restart_delays(proc: subprocess.Popen[str], count: int) -> list[str]:
    assert proc.stdout is not None
    found: list[str] = []
    for line in proc.stdout:  # bounded by the caller's timeout, and by the process's end
        match = re.search(r"exited with status 1; starting another in (\S+)s", line)
        if match:
            found.append(match.group(1))
            if len(found) == count:
                return found
    raise AssertionError(f"the supervisor ended after {found}")


async def test_worker_processes_stop_when_the_supervisor_is_killed(
    live_pids: LivePids, supervisor: Spawn, settings: Settings
) -> None:
    proc = supervisor(2)

    async def two_workers() -> bool:
        return len(await live_pids()) == 2

    await eventually(two_workers, timeout=60, message="two worker processes beating")
    children = await live_pids()
    proc.kill()
    await eventually(lambda: all(_gone(pid) for pid in children), timeout=30, message="orphans gone")


async def test_a_second_signal_makes_every_worker_process_exit_at_once(
    live_pids: LivePids, supervisor: Spawn, settings: Settings, make_envoi: Any, tmp_path: Path
) -> None:
    envoi: Envoi = make_envoi(settings, registry=HandlerRegistry())
    proc = supervisor(2, WORKER_SHUTDOWN_TIMEOUT_S="60")

    async def two_workers() -> bool:
        return len(await live_pids()) == 2

    await eventually(two_workers, timeout=60, message="two worker processes beating")
    children = await live_pids()
    started = tmp_path / "started"
    await envoi.queue.enqueue(NOTIFICATIONS_QUEUE, "SLEEP", {"started": str(started), "seconds": 120})
    await eventually(started.exists, timeout=30, message="the long job to start")
    proc.send_signal(signal.SIGTERM)
    # Both children's handlers have run before the second signal goes: SIGINT and SIGTERM pending in a
    # child at once would be handled SIGINT first (signal number order), the SIGTERM then its "again".
    child_heard = "SIGTERM received: stopping (send it again to exit at once)"
    await asyncio.wait_for(asyncio.to_thread(_wait_for, proc, child_heard, times=2), timeout=30)
    proc.send_signal(signal.SIGINT)
    code, output = await _exit(proc, timeout=15)  # not the 60 s the long job was given
    assert code == 1, output
    assert "SIGINT again: worker processes exit at once" in output
    assert f"did not stop cleanly (status {128 + signal.SIGINT})" in output
    assert all(_gone(pid) for pid in children)


def _wait_for(proc: subprocess.Popen[str], text: str, *, times: int = 1) -> None:
    """Read the supervisor's output (its children's included) until `text` showed `times` times."""
    assert proc.stdout is not None
    for line in proc.stdout:  # bounded by the caller's timeout, and by the process's end
        if text in line:
            times -= 1
            if times == 0:
                return
    raise AssertionError(f"the supervisor ended without printing {text!r}")
