"""The GCRA script on a real Redis: slots one interval apart (no one-second window over the limit),
bursts refused, a pause honoured by the next reservation, buckets combined."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest

from envoi.config import Settings
from envoi.queue.jobs import HandlerRegistry
from envoi.queue.rate_limits import Bucket, RateLimiter
from envoi.runtime import Envoi


def limiter(make_envoi: Any, settings: Settings) -> RateLimiter:
    envoi: Envoi = make_envoi(settings, registry=HandlerRegistry())
    return envoi.queue.rate_limits


def max_in_any_second(times: list[float]) -> int:
    times = sorted(times)
    return max(sum(1 for t in times if start <= t < start + 1.0) for start in times)


async def test_concurrent_reservations_never_put_more_than_the_rate_in_one_second(
    make_envoi: Any, settings: Settings
) -> None:
    rates = limiter(make_envoi, settings)
    bucket = Bucket("twilio", 5)

    async def book() -> float:
        reservation = await rates.reserve([bucket], label="twilio", max_wait_s=10)
        assert reservation.granted
        return reservation.slot_s

    slots = sorted(await asyncio.gather(*(book() for _ in range(20))))
    assert max_in_any_second(slots) == 5
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(slots)]
    assert set(gaps) == {0.2}
    # A caller that would have to wait beyond its limit is refused and books nothing.
    late = await rates.reserve([bucket], label="twilio", max_wait_s=1)
    assert not late.granted and late.slot_s == pytest.approx(slots[-1] + 0.2, abs=1e-6)


async def test_a_burst_is_refused_when_it_cannot_wait(make_envoi: Any, settings: Settings) -> None:
    rates = limiter(make_envoi, settings)
    bucket = Bucket("resend", 2)
    first = await rates.reserve([bucket], label="resend", max_wait_s=0)
    second = await rates.reserve([bucket], label="resend", max_wait_s=0)
    assert first.granted and first.wait_s == 0
    assert not second.granted and 0.4 < second.wait_s <= 0.5
    # Nothing was booked by the refusal: the next slot is still the same one.
    third = await rates.reserve([bucket], label="resend", max_wait_s=1)
    assert third.granted and 0.4 < third.wait_s <= 0.5
    stats = await rates.stats()
    assert stats["refused:resend"] == 1 and stats["throttled:resend"] == 1


async def test_a_pause_holds_every_bucket_until_it_ends(make_envoi: Any, settings: Settings) -> None:
    rates = limiter(make_envoi, settings)
    await rates.pause(["twilio"], label="twilio", seconds=2)
    # An unlimited bucket (rate 0) still honours the pause, and a shorter one does not shorten it.
    await rates.pause(["twilio"], label="twilio", seconds=0.5)
    reservation = await rates.reserve([Bucket("twilio", 0)], label="twilio", max_wait_s=5)
    assert reservation.granted and 1.9 < reservation.wait_s <= 2.0


async def test_provider_and_sender_buckets_are_booked_together(make_envoi: Any, settings: Settings) -> None:
    rates = limiter(make_envoi, settings)
    provider, sender = Bucket("twilio", 10), Bucket("twilio:+33612345678", 1)
    await rates.reserve([provider, sender], label="twilio", max_wait_s=5)
    # The same sender waits its own second; another sender only the provider's tenth.
    same = await rates.reserve([provider, sender], label="twilio", max_wait_s=5)
    other = await rates.reserve([provider, Bucket("twilio:+33700000000", 1)], label="twilio", max_wait_s=5)
    assert 0.9 < same.wait_s <= 1.0
    assert other.wait_s <= 1.2 and other.granted
