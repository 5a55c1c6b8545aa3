"""``--sample N``: a stratified, seeded sample of a task set, so a short pass still covers every
part and kind in proportion. Pure."""

from __future__ import annotations

import random
from collections.abc import Sequence

from agentfleet.evaluation.taskset import EvalTask


def allocate(sizes: dict[tuple[str, str], int], n: int) -> dict[tuple[str, str], int]:
    """How many tasks each stratum gives to a sample of ``n``: in proportion to its size (largest
    remainders), every stratum at least one while ``n`` allows, never more than it holds."""
    total = sum(sizes.values())
    if n >= total:
        return dict(sizes)
    keys = sorted(sizes)
    floor = 1 if n >= len(keys) else 0
    quota = {k: n * sizes[k] / total for k in keys}
    got = {k: min(sizes[k], max(floor, int(quota[k]))) for k in keys}
    # The seats left go to the largest remainders (ties: the larger stratum, then its name).
    while sum(got.values()) < n:
        open_ = [k for k in keys if got[k] < sizes[k]]
        best = max(open_, key=lambda k: (quota[k] - got[k], sizes[k], k))
        got[best] += 1
    while sum(got.values()) > n:  # only when the floor of one each overshot: take from the largest
        best = max((k for k in keys if got[k] > floor), key=lambda k: (got[k] - quota[k], k))
        got[best] -= 1
    return got


def stratified_sample(tasks: Sequence[EvalTask], n: int, seed: int = 0) -> list[EvalTask]:
    """``n`` tasks drawn by (part, kind) stratum with ``seed``; in the set's order. The same set,
    ``n`` and seed give the same sample, so a resumed run meets the same tasks."""
    strata: dict[tuple[str, str], list[EvalTask]] = {}
    for t in tasks:
        strata.setdefault((t.part, t.kind), []).append(t)
    counts = allocate({k: len(v) for k, v in strata.items()}, n)
    rng = random.Random(seed)
    chosen = {t.id for k in sorted(strata) for t in rng.sample(strata[k], counts[k])}
    return [t for t in tasks if t.id in chosen]
