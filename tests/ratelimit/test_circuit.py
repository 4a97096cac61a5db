"""A provider's circuit: opens after N transient failures in a row, lets one send try after the
cool-down, closes on its success and reopens on its failure."""

from __future__ import annotations

from envoi.channels.policy import ProviderCircuit
from envoi.queue.breaker import BreakerState


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_circuit_opens_after_n_failures_in_a_row_and_half_opens_after_the_cooldown() -> None:
    clock = Clock()
    circuit = ProviderCircuit(threshold=3, cooldown_s=30, clock=clock)
    circuit.record_failure()
    circuit.record_failure()
    circuit.record_success()  # "in a row": a success starts the count again
    for _ in range(2):
        circuit.record_failure()
    assert circuit.allow() and circuit.state is BreakerState.CLOSED
    circuit.record_failure()
    assert circuit.state is BreakerState.OPEN and not circuit.allow()
    clock.now = 29.9
    assert not circuit.allow()
    clock.now = 30
    assert circuit.allow() and circuit.state is BreakerState.HALF_OPEN
    assert not circuit.allow()  # one trial at a time
    circuit.record_failure()  # the trial failed: open again for a full cool-down
    assert circuit.state is BreakerState.OPEN and not circuit.allow()
    clock.now = 60
    assert circuit.allow()
    circuit.record_success()
    assert circuit.state is BreakerState.CLOSED and circuit.failures_in_a_row == 0
