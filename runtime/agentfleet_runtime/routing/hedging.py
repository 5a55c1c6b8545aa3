"""The hedge budget: a token bucket in units of calls (pure).

Every logical call earns ``ratio`` (maxExtraPercent / 100) of a token, up to ``burst``; a hedge
spends one whole token. So hedges never exceed ratio x calls + the initial tokens, however slow the
fleet gets; without this cap, hedging during an overload doubles the load exactly when the fleet
can least afford it. It starts empty so the bound holds from the first call.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class HedgeBudget:
    ratio: float
    burst: float = 10.0
    tokens: float = 0.0
    calls: int = 0
    hedges: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio <= 1.0:
            raise ValueError("ratio must be within [0, 1]")

    def on_call(self) -> None:
        self.calls += 1
        self.tokens = min(self.burst, self.tokens + self.ratio)

    def try_spend(self) -> bool:
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            self.hedges += 1
            return True
        return False
