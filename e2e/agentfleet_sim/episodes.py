"""Slow episodes: stretches of time in which every call a replica starts is slow (pure, seeded).

Why a second slowness model next to ``slow_fraction``: real tail latency is correlated in time
per replica (a long prefill hogging the batch, thermal or power throttling, a noisy neighbour on
the node, a GC pause in the server), so a task pinned to that replica by sticky routing meets
several slow calls in a row, while ``slow_fraction`` draws each call independently.

The schedule alternates normal gaps and episodes, both exponential (memoryless, so no phase is
special): episodes last ``mean_seconds`` on average and gaps ``mean_seconds x (1 - f) / f``, so
the replica spends a share ``f`` of its time slow in the long run. Drawn lazily from its own
seeded generator, so the schedule depends only on the seed and the start time, not on how many
calls the replica serves.
"""

from __future__ import annotations

import random
from bisect import bisect_right


class SlowEpisodes:
    def __init__(self, fraction: float, mean_seconds: float, seed: int, start: float = 0.0) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must be within [0, 1]")
        if mean_seconds <= 0.0:
            raise ValueError("mean_seconds must be positive")
        self.fraction = fraction
        self.mean_seconds = mean_seconds
        self._rng = random.Random(seed)
        self._starts: list[float] = []
        self._ends: list[float] = []
        self._horizon = start  # the schedule is known up to here

    def _extend(self, until: float) -> None:
        f, mean = self.fraction, self.mean_seconds
        gap_mean = mean * (1.0 - f) / f
        while self._horizon <= until:
            begin = self._horizon + self._rng.expovariate(1.0 / gap_mean)
            end = begin + self._rng.expovariate(1.0 / mean)
            self._starts.append(begin)
            self._ends.append(end)
            self._horizon = end

    def active(self, now: float) -> bool:
        """Is ``now`` inside an episode?"""
        if self.fraction <= 0.0:
            return False
        if self.fraction >= 1.0:
            return True
        self._extend(now)
        i = bisect_right(self._starts, now) - 1
        return i >= 0 and now < self._ends[i]

    def episodes(self, until: float) -> list[tuple[float, float]]:
        """(start, end) of every episode that starts before ``until`` (for reports and tests)."""
        if not 0.0 < self.fraction < 1.0:
            return []
        self._extend(until)
        return [(s, e) for s, e in zip(self._starts, self._ends, strict=True) if s < until]
