"""Fault draws keyed by the call (``FaultConfig.draws = "call"``), for benchmarks that compare
policies on the same faults.

By default a replica draws each admitted call's faults (an error, a slow call) from one generator
in the order the calls reach it. Two routing policies then meet different faults: a hedge, a moved
task or a call that comes a little earlier shifts every later draw of that replica. Keyed draws
give each attempt its own generator, seeded by

- the fleet's fault seed (the replicas of one ``start_replicas`` or ``Fleet`` share one book);
- the call's prompt (its tokens, so the same logical call wherever and whenever it is sent: the
  routing client sends no task id or step, but an agent's prompt names its task and grows with
  each step);
- how many attempts of that prompt the fleet admitted before: a call's first attempt draws the
  same whichever replica it reaches and whichever policy sent it; a hedge's duplicate (or a retry)
  is the next attempt and draws afresh, so it is not slow because the original was.

A replica that is not part of a fleet keeps a book of its own, keyed by its seed and its name.
Slow episodes and stalls are scheduled in time already (episodes.py, ``stall_seconds``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from .kv_cache import HashedPrompt


def prompt_key(prompt: Sequence[int] | HashedPrompt) -> int:
    """The prompt's identity: equal token lists give equal keys, in every process (tuples of
    ints hash alike everywhere; only str and bytes hashing is salted)."""
    if isinstance(prompt, HashedPrompt):  # its chain covers the full blocks; add the tail
        return hash((-1, prompt.hashes[-1] if prompt.hashes else 0, tuple(prompt.tail), prompt.length))
    return hash(tuple(prompt))


class CallDraws:
    """One generator per attempt of a call; see the module doc."""

    def __init__(self, seed: int | str) -> None:
        self.seed = seed
        self._attempts: dict[int, int] = {}  # prompt key -> attempts admitted so far

    def _rng(self, key: int, attempt: int) -> random.Random:
        return random.Random(f"{self.seed}/{key}/{attempt}")

    def peek(self, key: int) -> random.Random:
        """The generator the next attempt of this call will draw from (nothing used up)."""
        return self._rng(key, self._attempts.get(key, 0))

    def take(self, key: int) -> random.Random:
        """The generator of this attempt; the next attempt of the call gets a new one."""
        attempt = self._attempts.get(key, 0)
        self._attempts[key] = attempt + 1
        return self._rng(key, attempt)

    def attempts(self, key: int) -> int:
        return self._attempts.get(key, 0)
