"""Circuit breaker per tool: stop calling a tool that keeps failing, probe it back later.

Closed: calls go through; ``failure_threshold`` consecutive failures open it. Open: calls are
refused (the model gets an observation saying so) until ``cooldown`` has passed. Half-open: one
probe call at a time goes through; success closes, failure opens again for another cooldown.
State is per worker process: each worker learns on its own, which is enough to stop hammering.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum


class BreakerState(IntEnum):
    # Values are the agentfleet_tool_breaker_state gauge's.
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    def __init__(
        self, failure_threshold: int = 5, cooldown: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._state = BreakerState.CLOSED
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.cooldown:
            return BreakerState.HALF_OPEN
        return self._state

    def allow(self) -> bool:
        """Whether a call may go out now; in half-open only one probe is let through."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._state = BreakerState.HALF_OPEN
            self._probing = True
            return True
        return False

    def retry_after(self) -> float:
        return max(0.0, self.cooldown - (self._clock() - self._opened_at))

    def record(self, ok: bool) -> None:
        if ok:
            self._failures = 0
            self._state = BreakerState.CLOSED
            self._probing = False
            return
        self._failures += 1
        if self._probing or self._failures >= self.failure_threshold:
            self._state = BreakerState.OPEN
            self._opened_at = self._clock()
            self._probing = False

    def release_probe(self) -> None:
        """A probe that ended without a verdict (cancelled) lets the next call probe instead."""
        self._probing = False
