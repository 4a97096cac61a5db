"""`Deadlines`: one timer per tick bounds every call of that tick, as `asyncio.timeout` bounds one."""

from __future__ import annotations

import asyncio

import pytest

from envoi.queue.deadline import Deadlines


async def test_a_call_past_its_budget_is_a_timeout_and_calls_within_it_are_untouched() -> None:
    deadlines = Deadlines(0.2, tick_s=0.05)
    never = asyncio.Event()
    started = asyncio.get_running_loop().time()
    with pytest.raises(TimeoutError):
        await deadlines.bound(never.wait())
    elapsed = asyncio.get_running_loop().time() - started
    assert 0.2 <= elapsed < 0.2 + 0.05 + 1.0, elapsed  # the budget, plus a tick, plus a loaded machine
    assert await deadlines.bound(asyncio.sleep(0, result="done")) == "done"
    # Many calls in one tick share one timer; each answers for itself.
    results = await asyncio.gather(
        deadlines.bound(never.wait()),
        deadlines.bound(asyncio.sleep(0, result=1)),
        return_exceptions=True,
    )
    assert isinstance(results[0], TimeoutError) and results[1] == 1
    assert not deadlines._expired


async def test_a_cancellation_from_elsewhere_stays_a_cancellation() -> None:
    deadlines = Deadlines(30)
    never = asyncio.Event()
    task = asyncio.create_task(deadlines.bound(never.wait()))
    await asyncio.sleep(0)  # a step for the task to start waiting, not a synchronisation on state
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # A timeout does not swallow the caller's own cancellation that arrives later.
    assert task.cancelled()


async def test_an_error_of_the_call_is_raised_as_it_is() -> None:
    async def fails() -> None:
        raise ConnectionError("refused")

    with pytest.raises(ConnectionError, match="refused"):
        await Deadlines(1).bound(fails())
