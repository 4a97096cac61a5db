"""Stopping a long-running process on SIGTERM/SIGINT, always.

The first signal asks for a graceful stop (the callback runs in the event loop). From then on:

- a second SIGTERM or SIGINT exits at once (status 128 + the signal), from a plain Python signal
  handler, which runs even while the event loop is busy;
- a watchdog thread exits (status 1) if the process is still there `deadline_s` later, which works even
  when a job blocks the event loop or a library ignores cancellation.

`leave()`, awaited last by the process's main coroutine, exits without waiting for tasks that ignored
their cancellation (a library finishing a protocol exchange after it was cancelled: an SMTP client
saying QUIT to a server that does not answer), which would otherwise hold `asyncio.run`'s clean-up.

Exiting this way skips the remaining clean-up: the jobs still running are abandoned as in a crash (their
locks expire and another worker takes them up; the delivery ledger keeps a message from leaving twice).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

log = logging.getLogger("envoi.worker")

SIGNALS = (signal.SIGTERM, signal.SIGINT)


def on_first_signal(callback: Callable[[], None], *, deadline_s: float) -> None:
    """Run `callback` in the running event loop on the first SIGTERM/SIGINT.

    Plain Python signal handlers, not the loop's: they run as soon as the main thread runs Python code,
    so a job that blocks the event loop (a CPU-bound loop, a blocking call) cannot delay the watchdog.
    """
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if received:
            _exit_now(signum, frame)
        received.append(signum)
        _start_watchdog(deadline_s)
        name = signal.Signals(signum).name
        loop.call_soon_threadsafe(log.info, "%s received: stopping (send it again to exit at once)", name)
        loop.call_soon_threadsafe(callback)

    for sig in SIGNALS:
        signal.signal(sig, handler)


def _exit_now(signum: int, _frame: FrameType | None) -> None:
    # os.write, not logging: a signal handler may interrupt a logging call holding its lock.
    os.write(2, f"envoi: {signal.Signals(signum).name} again: exiting now\n".encode())
    os._exit(128 + signum)


def _start_watchdog(deadline_s: float) -> None:
    def overran() -> None:
        os.write(2, f"envoi: still running {deadline_s:g}s after the stop signal: exiting now\n".encode())
        os._exit(1)

    timer = threading.Timer(deadline_s, overran)
    timer.daemon = True
    timer.start()


async def leave(grace_s: float) -> None:
    """Give the tasks still there `grace_s` to end; if some do not, exit now (status 0: the stop itself
    went as asked), naming them, rather than let `asyncio.run` wait for them without a bound.

    Nothing is cancelled here, on purpose: cancelling bullmq's internal close task makes its `close()`
    loop on an already-cancelled future without ever yielding (the event loop spins, signals go
    unheard), which is what `asyncio.run`'s own clean-up would do.
    """
    current = asyncio.current_task()
    left = [task for task in asyncio.all_tasks() if task is not current and not task.done()]
    if not left:
        return
    _, stuck = await asyncio.wait(left, timeout=grace_s)
    if stuck:
        names = ", ".join(sorted(task.get_name() for task in stuck))
        log.warning("Exiting with %d task(s) still running: %s", len(stuck), names)
        logging.shutdown()
        os._exit(0)
