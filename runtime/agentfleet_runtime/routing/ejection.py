"""Outlier ejection per replica: a small state machine driven by call outcomes and a clock value.

HEALTHY --N consecutive errors--> EJECTED --ejection time over, next call--> PROBING
PROBING --success--> HEALTHY;  PROBING --error--> EJECTED again, for twice as long (capped).

Why a single probe: an ejected replica may still be broken; letting only one call through at a
time (a half-open breaker) costs at most one failed call per ejection period. Why the doubling: a
replica that keeps failing its probes (a crash loop) should cost ever fewer probe failures. The
caller passes ``now`` (the event loop's clock), so the machine is pure and a virtual clock works.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Health(StrEnum):
    HEALTHY = "healthy"
    EJECTED = "ejected"
    PROBING = "probing"


@dataclass
class OutlierDetector:
    consecutive_errors: int = 5
    ejection_seconds: float = 30.0
    max_ejection_factor: int = 8
    state: Health = Health.HEALTHY
    failures: int = 0  # consecutive, while healthy
    ejections: int = 0  # consecutive ejections without a successful probe in between
    until: float = 0.0  # end of the current ejection
    probe_since: float = 0.0

    def admits(self, now: float) -> bool:
        """May a new call go here? Side-effect free; ``on_send`` records the probe."""
        if self.state is Health.HEALTHY:
            return True
        if self.state is Health.EJECTED:
            return now >= self.until
        # A probe that never reported back (its caller was cancelled) must not block the replica
        # forever: after one more ejection period another probe may go.
        return now >= self.probe_since + self.ejection_seconds

    def on_send(self, now: float) -> None:
        if self.state is not Health.HEALTHY and self.admits(now):
            self.state = Health.PROBING
            self.probe_since = now

    def on_success(self, now: float) -> None:
        self.state = Health.HEALTHY
        self.failures = 0
        self.ejections = 0

    def on_failure(self, now: float) -> bool:
        """Record an error; returns True when this error ejected the replica."""
        if self.state is Health.PROBING:
            self._eject(now)
            return True
        if self.state is Health.EJECTED:
            return False  # a call sent before the ejection finished late: already counted
        self.failures += 1
        if self.failures >= self.consecutive_errors:
            self._eject(now)
            return True
        return False

    def _eject(self, now: float) -> None:
        self.ejections += 1
        factor = min(2 ** (self.ejections - 1), self.max_ejection_factor)
        self.state = Health.EJECTED
        self.until = now + self.ejection_seconds * factor
        self.failures = 0
