"""Paired statistics of two versions' per-task outcomes: Newcombe's interval and the exact McNemar
test. Pure: no I/O. Shared so that `agentfleet eval` (agentfleet_client.evaluation.paired) and the
operator's evaluation gate (agentfleet.gate) compute the same figures from the same counts.

- the interval: Newcombe's method 10 (Newcombe 1998, Stat Med 17:2635-2650), the Wilson score
  intervals of the two passes' success rates combined with the correlation of the paired outcomes
  (phi, continuity-corrected as in Altman et al. 2000, "Statistics with Confidence", ch. 6). It stays
  inside [-1, 1], has width when no question is discordant, and is not degenerate at 0% or 100%;
- the test: McNemar's, exact (a binomial test of the discordant questions at 1/2), since with a
  handful of discordant questions the chi-squared approximation is poor.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

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


def table(pairs: Iterable[tuple[bool, bool]]) -> Paired | None:
    """The paired figures of (first, other) outcomes of the same tasks; None when there is none."""
    both = only_first = only_other = neither = 0
    for a, b in pairs:
        if a and b:
            both += 1
        elif a:
            only_first += 1
        elif b:
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
