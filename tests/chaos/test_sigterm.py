"""(8) SIGTERM under load, one of the running sends far longer than the shutdown timeout: the worker exits
within WORKER_SHUTDOWN_TIMEOUT_S plus a few seconds; the short sends finish, the long one is abandoned
(cut before the server accepted it) and sent once by the other worker; nothing is sent twice."""

from __future__ import annotations

import signal
import time

import pytest

from tests.chaos.conftest import Proc, Stage
from tests.chaos.support import (
    connections,
    dead_letter_count,
    drained,
    enqueue_emails,
    received,
    recipients,
    report,
)
from tests.helpers import eventually

SHUTDOWN_TIMEOUT_S = 2
#: "A few seconds": the forced close, the stragglers, closing the database and Redis clients.
EXIT_MARGIN_S = 5
LONG = "long@example.com"


async def _exited(proc: Proc, signalled_at: float) -> float:
    """Seconds from its SIGTERM to the process's exit, which must be clean and in time."""
    code = await proc.exit_code(timeout=SHUTDOWN_TIMEOUT_S + 30)
    elapsed = time.monotonic() - signalled_at
    assert code == 0, proc.output()
    assert elapsed < SHUTDOWN_TIMEOUT_S + EXIT_MARGIN_S, f"{proc.name} took {elapsed:.1f}s:\n{proc.output()}"
    return elapsed


@pytest.mark.serial  # it times a process's exit: measured on a quiet machine
async def test_sigterm_under_load_exits_in_time_and_sends_nothing_twice(stage: Stage) -> None:
    envoi = stage.envoi()
    stage.smtp.slow_down(0.4, stage="rcpt")
    stage.smtp.slow_down(120, stage="rcpt", recipients=[LONG])  # far longer than the shutdown timeout
    workers = [stage.worker(worker_shutdown_timeout_s=SHUTDOWN_TIMEOUT_S) for _ in range(2)]
    for worker in workers:
        await eventually(lambda w=worker: "Waiting for jobs" in w.output(), timeout=30, message="started")
    load = recipients("load", 40)
    await enqueue_emails(envoi, [LONG, *load])
    await eventually(
        lambda: (
            LONG in stage.smtp.sending_to()
            and all(connections(w.process.pid, stage.smtp.port) > 0 for w in workers)
        ),
        timeout=30,
        message="both workers sending, one of them the long one",
    )
    signalled_at = time.monotonic()
    for worker in workers:
        worker.process.send_signal(signal.SIGTERM)
    exits = [await _exited(worker, signalled_at) for worker in workers]
    outputs = "".join(worker.output() for worker in workers)
    assert "abandoned" in outputs and "SEND_EMAIL" in outputs
    assert [LONG] in stage.smtp.cut  # abandoned before the server accepted it

    stage.smtp.speed_up()  # a fast server again: the next worker sends the long one too
    stage.worker(worker_shutdown_timeout_s=SHUTDOWN_TIMEOUT_S)
    await eventually(
        lambda: set(received(stage.smtp)) == {LONG, *load}, timeout=60, message="every message sent"
    )
    await eventually(lambda: drained(envoi), timeout=30, message="every job done")
    counts = received(stage.smtp)
    report(
        "SIGTERM under load",
        shutdown_timeout_s=SHUTDOWN_TIMEOUT_S,
        exits_s=[round(e, 2) for e in exits],
        messages=len(load) + 1,
        received=sum(counts.values()),
    )
    assert all(n == 1 for n in counts.values()), {k: n for k, n in counts.items() if n > 1}
    assert await dead_letter_count(envoi) == 0
