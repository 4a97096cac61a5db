"""Provider policy around the provider channels: shared send-rate limits, and failover with circuits.

    FailoverChannel([ThrottledChannel(resend), ThrottledChannel(smtp)])     EMAIL_PROVIDERS=resend,smtp

`ThrottledChannel` waits for its slot in the provider's bucket (and the sender's, when RATE_LIMITS names
one) before each send; the slot is booked in Redis (`envoi.queue.rate_limits`), so every worker and
process shares it. A transient answer carrying `Retry-After` (a 429, a 503) pauses the provider's
buckets for that long, for every worker, and the same message waits and goes again within the same
attempt. The wait is bounded by RATE_LIMIT_MAX_WAIT_S: a slot further away postpones the job until it
(`DeferredError`: back to bullmq's delayed set, no attempt spent, the ledger row released); a
Retry-After longer than the wait fails the send transiently (an attempt is spent: a provider that keeps
asking to wait is not healthy). With Redis unavailable, nothing is limited.

`FailoverChannel` sends through the first provider whose circuit is closed; a transient failure
(connection refused, timeout, 5xx, 429 past the wait) or a slot too far away passes the same message to
the next one in the same attempt; a permanent one (a refused address) is raised as is. Circuits are per process: a provider
failing PROVIDER_BREAKER_THRESHOLD times in a row is skipped for PROVIDER_BREAKER_COOLDOWN_S, then
tried again once (the queue's breaker idea, `envoi.queue.breaker`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar

from envoi import metrics
from envoi.channels.base import Channel, ChannelName, SendReceipt
from envoi.errors import (
    DeferredError,
    PermanentDeliveryError,
    QueueUnavailableError,
    TransientDeliveryError,
)
from envoi.queue.breaker import BreakerState
from envoi.queue.rate_limits import Bucket, RateLimiter

log = logging.getLogger("envoi.channels.policy")

M = TypeVar("M")

#: Slots are spaced 2 % wider than 1/rate: the time between a slot and the provider receiving the
#: request varies by a few milliseconds, and without a margin that jitter alone could put rate + 1
#: requests in some one-second window. 50/s is delivered as 49/s.
SPACING_MARGIN = 1.02


def buckets_for(provider: str, sender: str | None, limits: dict[str, float]) -> list[Bucket]:
    """The provider's bucket (rate 0 = unlimited, still there so a 429 can pause it) and the sender's
    when RATE_LIMITS names it."""
    buckets = [Bucket(provider, limits.get(provider, 0) / SPACING_MARGIN)]
    if sender and (rate := limits.get(f"{provider}:{sender}")):
        buckets.append(Bucket(f"{provider}:{sender}", rate / SPACING_MARGIN))
    return buckets


class ThrottledChannel(Generic[M]):
    def __init__(
        self,
        inner: Channel[M],
        *,
        limiter: RateLimiter,
        buckets: Sequence[Bucket],
        max_wait_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = inner
        self.name: ChannelName = inner.name
        self.provider: str = inner.provider
        self.limiter = limiter
        self.buckets = list(buckets)
        self.max_wait_s = max_wait_s
        self._clock = clock

    async def send(self, message: M) -> SendReceipt:
        deadline = self._clock() + self.max_wait_s
        while True:
            await self._wait_for_slot(deadline)
            try:
                receipt = await self.inner.send(message)
            except TransientDeliveryError as exc:
                metrics.PROVIDER_SENDS.labels(self.provider, "failed").inc()
                if exc.retry_after is None or self._clock() + exc.retry_after > deadline:
                    raise
                await self._pause(exc.retry_after)
                continue
            except Exception:
                metrics.PROVIDER_SENDS.labels(self.provider, "failed").inc()
                raise
            metrics.PROVIDER_SENDS.labels(self.provider, "sent").inc()
            return receipt

    async def _wait_for_slot(self, deadline: float) -> None:
        # Half the tightest interval: a sender that wakes later than that after its slot (a busy event
        # loop) gives the slot up and books another, rather than joining a crowd of late wakers.
        intervals = [b.interval_us / 1_000_000 for b in self.buckets if b.interval_us]
        late_tolerance = min(intervals) / 2 if intervals else None
        waited = False
        while True:
            asked_at = self._clock()
            try:
                reservation = await self.limiter.reserve(
                    self.buckets, label=self.provider, max_wait_s=max(0.0, deadline - asked_at)
                )
            except QueueUnavailableError:
                return  # no Redis, no shared limit: documented in docs/guarantees.md
            if not reservation.granted:
                metrics.PROVIDER_SENDS.labels(self.provider, "refused").inc()
                raise DeferredError(
                    f"{self.provider}: rate limit, next slot in {reservation.wait_s:.1f}s",
                    until=datetime.now(UTC) + timedelta(seconds=reservation.wait_s),
                )
            if reservation.wait_s > 0:
                if not waited:
                    metrics.PROVIDER_SENDS.labels(self.provider, "throttled").inc()
                    waited = True
                await asyncio.sleep(reservation.wait_s)
            # Measured from before the call: an upper bound of how late this sender is.
            late = self._clock() - (asked_at + reservation.wait_s)
            if late_tolerance is None or late <= late_tolerance:
                return

    async def _pause(self, seconds: float) -> None:
        log.warning("%s asked to wait %.1fs: every worker pauses it", self.provider, seconds)
        metrics.PROVIDER_SENDS.labels(self.provider, "paused").inc()
        try:
            await self.limiter.pause([b.name for b in self.buckets], label=self.provider, seconds=seconds)
        except QueueUnavailableError:
            await asyncio.sleep(seconds)  # this worker at least honours it

    async def aclose(self) -> None:
        await self.inner.aclose()


class ProviderCircuit:
    """Opens after `threshold` transient failures in a row; after `cooldown_s`, one send may try."""

    def __init__(self, *, threshold: int, cooldown_s: float, clock: Callable[[], float] = time.monotonic):
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self._clock = clock
        self.state = BreakerState.CLOSED
        self.failures_in_a_row = 0
        self._opened_at = 0.0

    def allow(self) -> bool:
        if self.state is BreakerState.OPEN and self._clock() - self._opened_at >= self.cooldown_s:
            self.state = BreakerState.HALF_OPEN
            return True
        return self.state is BreakerState.CLOSED

    def record_success(self) -> None:
        self.state, self.failures_in_a_row = BreakerState.CLOSED, 0

    def record_failure(self) -> None:
        self.failures_in_a_row += 1
        if self.state is BreakerState.HALF_OPEN or self.failures_in_a_row >= self.threshold:
            self.state, self._opened_at = BreakerState.OPEN, self._clock()


@dataclass(frozen=True, slots=True)
class ProviderState:
    channel: str
    provider: str
    circuit: str
    failures_in_a_row: int


class FailoverChannel(Generic[M]):
    def __init__(self, channels: Sequence[Channel[M]], *, threshold: int, cooldown_s: float) -> None:
        if not channels:
            raise ValueError("FailoverChannel needs at least one channel")
        self.channels = list(channels)
        self.name: ChannelName = channels[0].name
        self.provider: str = channels[0].provider
        self.circuits = [ProviderCircuit(threshold=threshold, cooldown_s=cooldown_s) for _ in channels]

    async def send(self, message: M) -> SendReceipt:
        pairs = list(zip(self.channels, self.circuits, strict=True))
        # Providers whose circuit is open are skipped; when all are, all are tried rather than none.
        candidates = [(c, b) for c, b in pairs if b.allow()] or pairs
        for index, (channel, circuit) in enumerate(candidates):
            try:
                receipt = await channel.send(message)
            except PermanentDeliveryError:
                raise
            except (TransientDeliveryError, DeferredError) as exc:
                if isinstance(exc, TransientDeliveryError):
                    circuit.record_failure()  # a full bucket says nothing of the provider's health
                if index == len(candidates) - 1:
                    raise
                metrics.PROVIDER_SENDS.labels(channel.provider, "failed_over").inc()
                why = exc.code if isinstance(exc, TransientDeliveryError) else "RATE_LIMITED"
                log.warning(
                    "%s failed (%s): trying %s", channel.provider, why, candidates[index + 1][0].provider
                )
                continue
            circuit.record_success()
            return receipt
        raise AssertionError("unreachable: the loop returns or raises")

    def states(self) -> list[ProviderState]:
        return [
            ProviderState(str(c.name), c.provider, str(b.state), b.failures_in_a_row)
            for c, b in zip(self.channels, self.circuits, strict=True)
        ]

    async def aclose(self) -> None:
        for channel in self.channels:
            await channel.aclose()


@dataclass(frozen=True, slots=True)
class ProviderReport:
    channel: str
    provider: str
    #: This process's view of the circuit (`closed`, `open`, `half_open`): circuits are per process.
    circuit: str
    failures_in_a_row: int
    #: RATE_LIMITS for the provider, sends per second (None: unlimited).
    rate_limit: float | None
    #: Shared counts (Redis): sends that waited for their slot, slots refused, Retry-After pauses;
    #: None when Redis cannot be asked.
    throttled: int | None
    refused: int | None
    paused: int | None


async def provider_report(
    states: Sequence[ProviderState], limiter: RateLimiter, limits: dict[str, float]
) -> list[ProviderReport]:
    """What `envoi providers` and `GET /v1/admin/queues` show about each provider."""
    try:
        stats: dict[str, int] | None = await limiter.stats()
    except QueueUnavailableError:
        stats = None

    def count(kind: str, provider: str) -> int | None:
        return None if stats is None else stats.get(f"{kind}:{provider}", 0)

    return [
        ProviderReport(
            channel=s.channel,
            provider=s.provider,
            circuit=s.circuit,
            failures_in_a_row=s.failures_in_a_row,
            rate_limit=limits.get(s.provider),
            throttled=count("throttled", s.provider),
            refused=count("refused", s.provider),
            paused=count("paused", s.provider),
        )
        for s in states
    ]
