"""Two passes over the same tasks, compared task by task. Pure: no I/O.

Every pass of a run answers the same questions, so a difference in success rates is a paired
difference: a question both passes get right, or both get wrong, says nothing about which is
better; only the discordant ones (right in one pass, wrong in the other) do. Treating the two
rates as independent samples would ignore that and give too wide an interval when the passes agree
on most questions. On a run of 20 to 25 questions one question is 4 to 5 points, so the report
gives the interval and the test beside the delta rather than the delta alone.

- the interval: Newcombe's method 10 (Newcombe 1998, Stat Med 17:2635-2650), the Wilson score
  intervals of the two passes' success rates combined with the correlation of the paired outcomes
  (phi, continuity-corrected as in Altman et al. 2000, "Statistics with Confidence", ch. 6). It stays
  inside [-1, 1], has width when no question is discordant, and is not degenerate at 0% or 100%;
- the test: McNemar's, exact (a binomial test of the discordant questions at 1/2), since with a
  handful of discordant questions the chi-squared approximation is poor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from agentfleet_client.evaluation.scoring import TaskScore

# The standard normal's 97.5th percentile, so that the interval is two-sided 95%: written out
# (statistics.NormalDist().inv_cdf(0.975), as the tests check) rather than rounded to 1.96, so that
# the limits are the published method's to every digit.
Z95 = 1.959963984540054


@dataclass(frozen=True)
class Paired:
    """The other pass against the first on the tasks both scored; every figure is other - first."""

    n: int  # tasks scored (success True or False) in both passes
    both: int  # right in both
    only_first: int  # right in the first pass only
    only_other: int  # right in the other pass only
    neither: int
    delta: float  # (only_other - only_first) / n: the other pass's success rate minus the first's
    low: float  # 95% confidence interval of delta (Newcombe's method 10)
    high: float
    p: float  # exact two-sided McNemar p-value: no difference between the passes


def wilson(successes: int, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion (n > 0)."""
    p = successes / n
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return centre - half, centre + half


def phi(both: int, only_first: int, only_other: int, neither: int) -> float:
    """The correlation of the two passes' outcomes, continuity-corrected (Altman et al. 2000).

    The correction shrinks a positive association by n/2 in the cross-product, and only a positive
    one: without it the interval is too narrow when the passes agree on most questions."""
    n = both + only_first + only_other + neither
    margins = (both + only_first) * (only_other + neither) * (both + only_other) * (only_first + neither)
    if margins == 0:  # a pass right (or wrong) on every task: no correlation to estimate
        return 0.0
    cross = both * neither - only_first * only_other
    if cross > n / 2:
        corrected = cross - n / 2
    elif cross < 0:
        corrected = cross
    else:
        corrected = 0.0
    return corrected / math.sqrt(margins)


def newcombe(both: int, only_first: int, only_other: int, neither: int) -> tuple[float, float]:
    """The 95% interval of other - first by Newcombe's method 10, clipped to [-1, 1]."""
    n = both + only_first + only_other + neither
    p_other, p_first = (both + only_other) / n, (both + only_first) / n
    lo_other, hi_other = wilson(both + only_other, n)
    lo_first, hi_first = wilson(both + only_first, n)
    r = phi(both, only_first, only_other, neither)
    delta = p_other - p_first
    # The lower limit takes the other pass at its lowest and the first at its highest; the upper
    # limit the reverse. Positive correlation cancels part of the two movements.
    down, up = p_other - lo_other, hi_first - p_first
    low = delta - math.sqrt(down * down - 2 * r * down * up + up * up)
    down, up = p_first - lo_first, hi_other - p_other
    high = delta + math.sqrt(down * down - 2 * r * down * up + up * up)
    return max(-1.0, low), min(1.0, high)


def mcnemar_exact(only_first: int, only_other: int) -> float:
    """Exact two-sided McNemar p-value: the discordant tasks as a binomial at 1/2 (1 when none is)."""
    m = only_first + only_other
    tail = sum(math.comb(m, k) for k in range(min(only_first, only_other) + 1))
    return min(1.0, 2 * tail / 2**m)


def paired(first: Sequence[TaskScore], other: Sequence[TaskScore]) -> Paired | None:
    """``other`` against ``first`` on the tasks both scored, matched by task id; None when none.

    A task one pass did not run (a time budget, a sample) or did not score is left out of both:
    the comparison stays on the same questions."""
    mine = {s.task.id: s.success for s in first if s.success is not None}
    both = only_first = only_other = neither = 0
    for s in other:
        a = mine.get(s.task.id)
        if a is None or s.success is None:
            continue
        if a and s.success:
            both += 1
        elif a:
            only_first += 1
        elif s.success:
            only_other += 1
        else:
            neither += 1
    n = both + only_first + only_other + neither
    if n == 0:
        return None
    low, high = newcombe(both, only_first, only_other, neither)
    return Paired(
        n=n,
        both=both,
        only_first=only_first,
        only_other=only_other,
        neither=neither,
        delta=(only_other - only_first) / n,
        low=low,
        high=high,
        p=mcnemar_exact(only_first, only_other),
    )
