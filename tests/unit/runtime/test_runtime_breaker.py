"""Circuit breaker per tool: open after failures, half-open probe after cooldown."""

from __future__ import annotations

from agentfleet_runtime.core.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_opens_after_threshold_and_probes_after_cooldown():
    clock = Clock()
    b = CircuitBreaker(failure_threshold=3, cooldown=10, clock=clock)
    for _ in range(2):
        assert b.allow()
        b.record(False)
    assert b.state is BreakerState.CLOSED
    b.record(False)
    assert b.state is BreakerState.OPEN and not b.allow()
    assert b.retry_after() == 10
    clock.t = 10
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow()  # the one probe
    assert not b.allow()  # no second concurrent probe
    b.record(False)
    assert b.state is BreakerState.OPEN  # probe failed: open again for a full cooldown
    clock.t = 20
    assert b.allow()
    b.record(True)
    assert b.state is BreakerState.CLOSED and b.allow()


def test_success_resets_consecutive_count():
    b = CircuitBreaker(failure_threshold=2, cooldown=1, clock=Clock())
    b.record(False)
    b.record(True)
    b.record(False)
    assert b.state is BreakerState.CLOSED


def test_cancelled_probe_lets_another_probe():
    clock = Clock()
    b = CircuitBreaker(failure_threshold=1, cooldown=1, clock=clock)
    b.record(False)
    clock.t = 1
    assert b.allow()
    b.release_probe()
    assert b.allow()
