"""The hedge budget: two token buckets, one in calls and one in model tokens, the second charged
with what losers cost (pure).

Every answered logical call earns ``ratio`` (maxExtraPercent / 100) of a call and of its tokens
(prompt plus completion). The balances hold at most what the calls answered in the last ``bank_s``
seconds earned, and at least ``burst_calls`` calls' worth: a replica that stalls strands at once
every call it holds, as many as the pod sends there in a few seconds, so the bank grows with the
pod's traffic where a fixed count left a busy pod's stalled calls waiting for credit. Once the
engines are seen to run cancelled requests to the end, the balances bank ``burst_calls`` again:
there every hedge of a storm of false judgments lands on the fleet as a whole call, and a minute's
bank let such storms through (log 2026-11-25-hedging-history, git history). A hedge may start when the balances cover
one call and a mean call's tokens; it spends the call and is advanced the tokens, and once the race
is over the loser's real cost replaces the advance (``settle``): the token balance may go below
zero, and no hedge starts until calls have earned the debt back. So hedges never exceed ratio x
calls, and the tokens spent on losers never exceed ratio x the tokens of all calls, plus one loser:
however slow the fleet gets (without a cap, hedging during an overload doubles the load exactly
when the fleet can least afford it), and whatever the losers cost.

A budget in calls would bound hedges, not load: the calls a hedge fires on are the slow ones,
and on an engine that does not abort a loser (abortwatch.py) the loser's tokens keep counting
until its end, so when slow calls are the long ones (the whole-call hedge fires on long answers)
5% of calls is several times 5% of the tokens. The caller decides what a loser cost
(``loser_cost``); the budget only keeps the account. It starts empty so the bound holds from the
first call.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

MEAN_WEIGHT = 0.05  # EWMA weight of one call in the mean call's tokens
BANK_S = 60.0  # the balances hold at most what this many seconds of answered calls earned


@dataclass
class HedgeBudget:
    ratio: float
    burst_calls: float = 10.0  # the least the balances may hold, in calls (a quiet pod's; the most where losers run on)
    bank_s: float = BANK_S  # the most they may hold: what the calls answered in this many seconds earned
    credit: float = 0.0  # the balance in calls
    tokens: float = 0.0  # the balance in tokens; below zero while a loser's cost is being earned back
    calls: int = 0
    hedges: int = 0
    call_tokens: float = 0.0  # tokens of all answered calls
    charged: float = 0.0  # tokens charged for losers
    mean: float | None = None  # tokens of a mean call (EWMA)
    recent: deque[tuple[float, float]] = field(default_factory=deque)  # (answered at, tokens) within bank_s
    recent_tokens: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio <= 1.0:
            raise ValueError("ratio must be within [0, 1]")

    def on_call(self, tokens: float, now: float, aborting: bool = True) -> None:
        """An answered logical call of ``tokens`` (prompt plus completion), answered at ``now`` by
        a replica whose engine aborts cancelled requests, as far as the client knows (``aborting``:
        assumed until seen not to)."""
        tokens = max(0.0, float(tokens))
        self.calls += 1
        self.call_tokens += tokens
        self.mean = tokens if self.mean is None else self.mean + MEAN_WEIGHT * (tokens - self.mean)
        self.recent.append((now, tokens))
        self.recent_tokens += tokens
        while self.recent[0][0] < now - self.bank_s:
            self.recent_tokens -= self.recent.popleft()[1]
        calls, tokens_cap = self.burst_calls, self.burst_calls * self.mean
        if aborting:  # a stall's hedges are cancelled as their races end: let them out together
            calls, tokens_cap = (
                max(calls, self.ratio * len(self.recent)),
                max(tokens_cap, self.ratio * self.recent_tokens),
            )
        self.credit = min(calls, self.credit + self.ratio)
        self.tokens = min(tokens_cap, self.tokens + self.ratio * tokens)

    def try_spend(self) -> float | None:
        """The advance for one hedge (a mean call's tokens), or None when a balance is short."""
        if self.mean is None or self.mean <= 0 or self.tokens < self.mean or self.credit < 1.0:
            return None
        self.credit -= 1.0
        self.tokens -= self.mean
        self.hedges += 1
        return self.mean

    def settle(self, advance: float, cost: float) -> None:
        """The race of a hedge that was advanced ``advance`` is over: its loser cost ``cost``."""
        cost = max(0.0, float(cost))
        self.tokens += advance - cost
        self.charged += cost


def loser_cost(prompt_tokens: int, completion_tokens: int, *, aborted: bool, share: float = 1.0) -> float:
    """Tokens a hedge's loser goes on costing its engine after the race, from the winner's usage
    (the same request): the work the calls bucket does not already bound.

    An engine not known to abort (abortwatch.py: unknown counts as not aborting here, so the bound
    holds while the watch learns) runs the loser to its end: a whole call, prompt and completion.
    An engine that aborts stops it when it is cancelled: up to then it did at most a call's work
    (the one call the calls bucket charged), and it wrote ``share`` of the completion (0 for a
    first-token race, whose loser had written nothing; the loser's time over the winner's for a
    whole-call race)."""
    if not aborted:
        return float(prompt_tokens + completion_tokens)
    return max(0.0, min(1.0, share)) * completion_tokens
