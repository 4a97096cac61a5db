"""`envoi worker --processes N`: N worker processes under one supervisor.

Each child is `envoi worker` itself (same options, same environment), so a child behaves exactly as a
worker started alone: its own graceful close, watchdog and heartbeat. The supervisor:

- starts a child again when it dies, after WORKER_RESTART_BACKOFF_S, doubled at each death in a row up
  to WORKER_RESTART_BACKOFF_MAX_S (a child that cannot start, Redis down for instance, does not spin);
  a child that ran for WORKER_RESTART_BACKOFF_MAX_S starts the doubling afresh;
- forwards SIGTERM/SIGINT to every child, once per signal it receives: the first one closes them
  gracefully, a second one makes them exit at once (as for a lone worker);
- exits 0 when every child stopped cleanly, 1 when one did not (its watchdog fired, it was killed, or it
  outlived WORKER_SHUTDOWN_TIMEOUT_S + envoi.worker.SHUTDOWN_GRACE_S + KILL_MARGIN_S and got SIGKILL).

Children run in their own process group, so that a terminal's Ctrl-C reaches the supervisor alone
(otherwise each child would see it twice, the terminal's and the forwarded one, and exit at once). Under
systemd, `KillMode=mixed` for the same reason. On Linux a child also gets SIGTERM if the supervisor
itself dies (`PR_SET_PDEATHSIG`): no worker is left orphaned.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from envoi.config import Settings
from envoi.shutdown import SIGNALS
from envoi.worker import SHUTDOWN_GRACE_S

log = logging.getLogger("envoi.supervisor")

#: A child that ran this long before it died is started again after the shortest delay.
STABLE_S = 60.0
#: After the children's own deadline (their watchdog), how long before the supervisor kills them.
KILL_MARGIN_S = 5.0
#: prctl(2) option: the signal a child receives when its parent dies.
PR_SET_PDEATHSIG = 1


def worker_argv(*, concurrency: int | None, queues: Sequence[str], jobs: Sequence[str]) -> list[str]:
    """The command line of one child: `envoi worker` with the supervisor's options but --processes."""
    argv = [sys.executable, "-m", "envoi", "worker"]
    if concurrency is not None:
        argv += ["--concurrency", str(concurrency)]
    for queue in queues:
        argv += ["--queue", queue]
    for module in jobs:
        argv += ["--jobs", module]
    return argv


def _prctl() -> Any:
    """libc's prctl, looked up in the supervisor: the child, between fork and exec, only calls it (no
    dlopen there, whose lock another thread of the parent may have held at the fork)."""
    if sys.platform != "linux":
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _prctl()


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: a failure here must not stop the child from starting.
    if _PRCTL is not None:
        with contextlib.suppress(Exception):
            _PRCTL(PR_SET_PDEATHSIG, signal.SIGTERM)


class Supervisor:
    """Keeps `processes` children of `argv` running until a signal, then stops them."""

    def __init__(self, settings: Settings, argv: list[str], processes: int) -> None:
        self.settings = settings
        self.argv = argv
        self.processes = processes
        self.children: dict[int, asyncio.subprocess.Process] = {}
        #: Exit status of each child that was running when the stop began.
        self.final: dict[int, int] = {}
        self.stopping = asyncio.Event()
        self.signals = 0

    def _env(self, index: int) -> dict[str, str]:
        env = dict(os.environ)
        if self.settings.worker_metrics_port:
            # One port per child: they cannot share one.
            env["WORKER_METRICS_PORT"] = str(self.settings.worker_metrics_port + index)
        return env

    def _signalled(self, signum: int) -> None:
        self.signals += 1
        name = signal.Signals(signum).name
        if self.signals == 1:
            log.info("%s received: stopping %d worker process(es)", name, len(self.children))
        else:
            log.warning("%s again: worker processes exit at once", name)
        self.stopping.set()
        for child in list(self.children.values()):
            self._send(child, signum)

    @staticmethod
    def _send(child: asyncio.subprocess.Process, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
            child.send_signal(signum)

    async def _keep(self, index: int) -> None:
        """Run child `index` until the stop, starting it again (after the backoff) whenever it dies."""
        s = self.settings
        delay = s.worker_restart_backoff_s
        while not self.stopping.is_set():
            try:
                child = await asyncio.create_subprocess_exec(
                    *self.argv, env=self._env(index), process_group=0, preexec_fn=_die_with_parent
                )
            except OSError as exc:
                log.error(
                    "Worker process %d could not be started (%s); trying again in %gs", index, exc, delay
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), delay)
                delay = min(delay * 2, s.worker_restart_backoff_max_s)
                continue
            self.children[index] = child
            if self.stopping.is_set():
                # The signal came while it was being started: it gets it now.
                self._send(child, signal.SIGTERM)
            log.info("Worker process %d started (pid %d)", index, child.pid)
            started = time.monotonic()
            code = await child.wait()
            if self.stopping.is_set():
                self.final[index] = code
                return
            del self.children[index]
            if time.monotonic() - started >= STABLE_S:
                delay = s.worker_restart_backoff_s
            log.warning(
                "Worker process %d (pid %d) exited with status %d; starting another in %gs",
                index,
                child.pid,
                code,
                delay,
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)  # the backoff, cut short by a stop
            delay = min(delay * 2, s.worker_restart_backoff_max_s)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            loop.add_signal_handler(sig, self._signalled, sig)
        log.info("Supervising %d worker processes (pid %d)", self.processes, os.getpid())
        keepers = [
            asyncio.create_task(self._keep(index), name=f"envoi-supervise-{index}")
            for index in range(self.processes)
        ]
        await self.stopping.wait()
        deadline = self.settings.worker_shutdown_timeout_s + SHUTDOWN_GRACE_S + KILL_MARGIN_S
        _, late = await asyncio.wait(keepers, timeout=deadline)
        code = 0
        for index, child in sorted(self.children.items()):
            if child.returncode is None:
                log.error(
                    "Worker process %d (pid %d) still running %gs after the stop: killed",
                    index,
                    child.pid,
                    deadline,
                )
                with contextlib.suppress(ProcessLookupError):
                    child.kill()
                await child.wait()
                code = 1
        for task in late:
            task.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)
        for index, status in sorted(self.final.items()):
            # Killed by the forwarded signal itself: it was still starting (no handler yet, no job).
            if status != 0 and -status not in SIGNALS:
                log.error("Worker process %d did not stop cleanly (status %d)", index, status)
                code = 1
        log.info("Worker processes stopped" if code == 0 else "Worker processes stopped, not all cleanly")
        return code


def supervise(settings: Settings, argv: list[str], processes: int) -> int:
    """Run the supervisor until it is signalled; its exit status."""
    return asyncio.run(Supervisor(settings, argv, processes).run())
