"""Full-jitter exponential backoff (pure; the random source is a parameter for tests).

Full jitter, uniform in [0, min(cap, base x 2^attempt)], rather than equal or decorrelated jitter:
when a replica dies, every pod's retries of its tasks would otherwise arrive at the next replicas in
synchronised waves; spreading them over the whole window keeps the failover load smooth.
"""

from __future__ import annotations

import random


def full_jitter(attempt: int, base: float = 0.05, cap: float = 2.0, rng: random.Random | None = None) -> float:
    if attempt < 0 or base < 0 or cap < 0:
        raise ValueError("attempt, base and cap must be non-negative")
    ceiling = min(cap, base * (2.0 ** min(attempt, 62)))
    return (rng or random).uniform(0.0, ceiling)
