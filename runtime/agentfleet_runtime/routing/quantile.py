"""Streaming quantile estimation: the P-squared algorithm (Jain and Chlamtac, 1985), plus a
two-window wrapper so the estimate follows drift.

Why P-squared: five markers, O(1) memory and time per observation, no sample buffer; one estimator
per call kind per pod is negligible. Plain P-squared never forgets, and call latency drifts (load,
history length, a new model version), so ``WindowedQuantile`` keeps two estimators half a window
apart and restarts the older one every ``window`` observations; it answers from the fuller of the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class P2Quantile:
    p: float
    count: int = 0
    _q: list[float] = field(default_factory=list)  # marker heights
    _n: list[float] = field(default_factory=list)  # marker positions (0-based)
    _np: list[float] = field(default_factory=list)  # desired positions
    _dn: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0.0 < self.p < 1.0:
            raise ValueError("p must be within (0, 1)")

    def add(self, x: float) -> None:
        self.count += 1
        if self.count <= 5:
            self._q.append(x)
            self._q.sort()
            if self.count == 5:
                p = self.p
                self._n = [0.0, 1.0, 2.0, 3.0, 4.0]
                self._np = [0.0, 2 * p, 4 * p, 2 + 2 * p, 4.0]
                self._dn = [0.0, p / 2, p, (1 + p) / 2, 1.0]
            return
        q, n = self._q, self._n
        if x < q[0]:
            q[0] = x
            k = 0
        elif x >= q[4]:
            q[4] = x
            k = 3
        else:
            k = next(i for i in range(4) if x < q[i + 1])
        for i in range(k + 1, 5):
            n[i] += 1
        for i in range(5):
            self._np[i] += self._dn[i]
        for i in (1, 2, 3):
            d = self._np[i] - n[i]
            if (d >= 1 and n[i + 1] - n[i] > 1) or (d <= -1 and n[i - 1] - n[i] < -1):
                s = 1.0 if d > 0 else -1.0
                candidate = self._parabolic(i, s)
                if not q[i - 1] < candidate < q[i + 1]:
                    j = i + int(s)
                    candidate = q[i] + s * (q[j] - q[i]) / (n[j] - n[i])
                q[i] = candidate
                n[i] += s

    def _parabolic(self, i: int, s: float) -> float:
        q, n = self._q, self._n
        return q[i] + s / (n[i + 1] - n[i - 1]) * (
            (n[i] - n[i - 1] + s) * (q[i + 1] - q[i]) / (n[i + 1] - n[i])
            + (n[i + 1] - n[i] - s) * (q[i] - q[i - 1]) / (n[i] - n[i - 1])
        )

    def value(self) -> float | None:
        if self.count == 0:
            return None
        if self.count < 5:
            ordered = sorted(self._q)
            return ordered[min(len(ordered) - 1, int(self.p * len(ordered)))]
        return self._q[2]


@dataclass
class WindowedQuantile:
    """Two estimators fed every observation, started half a window apart; the fuller one, once it
    has ``window`` observations, restarts. The answer comes from the fuller: after the first half
    window it always rests on between ``window / 2`` and ``window`` observations. Answering from
    a fresh estimator as soon as it has ``min_samples`` would make every restart a cliff: a high
    percentile of a small sample is its top, far under the tail (the stall watch's p99.9 of token
    gaps, stallwatch.py)."""

    p: float
    window: int = 2000
    min_samples: int = 50  # below this the estimate is noise: hedging waits for it
    _current: P2Quantile = field(init=False)  # the fuller
    _previous: P2Quantile | None = field(default=None, init=False)  # the other, started half a window later

    def __post_init__(self) -> None:
        self._current = P2Quantile(self.p)

    def add(self, x: float) -> None:
        self._current.add(x)
        if self._previous is None:
            if self._current.count >= max(1, self.window // 2):
                self._previous = P2Quantile(self.p)  # the second starts half a window behind
            return
        self._previous.add(x)
        if self._current.count >= self.window:
            self._current, self._previous = self._previous, P2Quantile(self.p)

    @property
    def count(self) -> int:
        """Observations behind the answer."""
        return self._current.count

    def value(self) -> float | None:
        """The estimate, or None while fewer than ``min_samples`` observations back it."""
        if self._current.count >= self.min_samples:
            return self._current.value()
        return None
