"""A circuit breaker in front of Redis, so that a dead Redis costs one timeout, not one per request."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from enum import StrEnum

log = logging.getLogger("envoi.queue")


class BreakerState(StrEnum):
    CLOSED = "closed"  # Redis is used
    OPEN = "open"  # Redis is skipped until the cool-down ends
    HALF_OPEN = "half_open"  # one call may try Redis again


class CircuitBreaker:
    def __init__(
        self,
        *,
        cooldown_s: float,
        target: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cooldown_s = cooldown_s
        self.target = target
        self._clock = clock
        self.state = BreakerState.CLOSED
        self._opened_at = 0.0

    def allow(self) -> bool:
        """May this call try Redis? After the cool-down, a single trial call is let through."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.OPEN and self._clock() - self._opened_at >= self.cooldown_s:
            self.state = BreakerState.HALF_OPEN
            return True
        return False

    def record_success(self) -> None:
        if self.state is not BreakerState.CLOSED:
            log.warning("Redis (%s) is reachable again: jobs go through the queue", self.target)
        self.state = BreakerState.CLOSED

    def record_failure(self, error: BaseException) -> None:
        if self.state is BreakerState.CLOSED:
            log.warning(
                "Redis (%s) unreachable (%s): jobs run synchronously, retrying Redis every %.1fs",
                self.target,
                type(error).__name__,
                self.cooldown_s,
            )
        self.state = BreakerState.OPEN
        self._opened_at = self._clock()

    @property
    def is_open(self) -> bool:
        return self.state is not BreakerState.CLOSED
