"""`Deadlines`: one timer per tick bounds every call made in that tick, where `asyncio.timeout` arms and
cancels a timer per call (a tenth of the CPU time of an enqueue: bench/enqueue.py, docs/benchmarks.md).

A call that starts in tick [t, t + TICK_S) is cancelled at t + TICK_S + budget if still running, so
each call is bounded by its budget plus at most TICK_S. The cancellation becomes a `TimeoutError` in
the call, as with `asyncio.timeout`; a cancellation from elsewhere stays a `CancelledError`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")

#: The width of a tick: the most a call may run beyond its budget.
TICK_S = 0.1


class Deadlines:
    def __init__(self, budget_s: float, *, tick_s: float = TICK_S) -> None:
        self.budget_s = budget_s
        self.tick_s = tick_s
        #: The tasks running a call that started in the current tick, and when that tick ends.
        self._current: set[asyncio.Task[object]] = set()
        self._tick_ends = float("-inf")
        #: Tasks cancelled here whose cancellation has not reached them yet.
        self._expired: set[asyncio.Task[object]] = set()

    async def bound(self, call: Awaitable[T]) -> T:
        """`await call`, or `TimeoutError` once the budget (plus at most a tick) has passed."""
        task = asyncio.current_task()
        if task is None:  # not in a task (a bare coroutine driven by hand): no bound to give
            return await call
        loop = asyncio.get_running_loop()
        if loop.time() >= self._tick_ends:
            self._current = set()
            self._tick_ends = loop.time() + self.tick_s
            loop.call_at(self._tick_ends + self.budget_s, self._expire, self._current)
        tick = self._current
        tick.add(task)
        try:
            return await call
        except asyncio.CancelledError:
            if task not in self._expired:
                raise
            self._expired.discard(task)
            task.uncancel()
            raise TimeoutError(f"no answer within {self.budget_s:.1f}s") from None
        finally:
            tick.discard(task)

    def _expire(self, tick: set[asyncio.Task[object]]) -> None:
        for task in tick:
            self._expired.add(task)
            task.cancel()
        tick.clear()
