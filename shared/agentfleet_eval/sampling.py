"""``--sample N``: a stratified, seeded sample of a task set, so a short pass still covers every
part and kind in proportion. Pure."""

from __future__ import annotations

import random
from collections.abc import Sequence

from agentfleet_eval.taskset import EvalTask, TaskSet


def allocate(sizes: dict[tuple[str, str], int], n: int) -> dict[tuple[str, str], int]:
    """How many tasks each stratum gives to a sample of ``n``: in proportion to its size (largest
    remainders; ties: the larger stratum, then its name), and, while ``n`` allows, every stratum
    at least one, its seat taken from the stratum furthest over its quota."""
    total = sum(sizes.values())
    if n >= total:
        return dict(sizes)
    keys = sorted(sizes)
    quota = {k: n * sizes[k] / total for k in keys}
    got = {k: int(quota[k]) for k in keys}
    for k in sorted(keys, key=lambda k: (int(quota[k]) - quota[k], -sizes[k], k))[: n - sum(got.values())]:
        got[k] += 1
    if n >= len(keys):
        for k in keys:
            if got[k] == 0 and sizes[k] > 0:
                donor = max((d for d in keys if got[d] > 1), key=lambda d: (got[d] - quota[d], d))
                got[donor] -= 1
                got[k] = 1
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


def gate_sample(taskset: TaskSet, part: str, n: int, seed: int) -> list[str]:
    """The task ids an evaluation gate runs: the set's ``part`` (dev, heldout or all), then a
    stratified sample of ``n`` (0: every task) with ``seed``, in the set's order. The same ids as
    ``agentfleet eval --part P --sample N --seed S`` runs, so the two agree on the same tasks."""
    tasks = taskset.part(part).tasks
    chosen = stratified_sample(tasks, n, seed) if n else list(tasks)
    return [t.id for t in chosen]
