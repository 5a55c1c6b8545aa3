"""The one percentile of the project (q always in 0..100): the fleet's p95 in status, the evaluation's
summaries, the benches, the demo's report and the tests all call these two."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TypeVar

E = TypeVar("E", float, None)


def percentile(values: Iterable[float], q: float, empty: E = math.nan) -> float | E:  # type: ignore[assignment]
    """Nearest-rank percentile: a value that occurred, never an interpolation; ``empty`` for none."""
    s = sorted(values)
    if not s:
        return empty
    return s[min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))]


def interpolated_percentile(values: Iterable[float], q: float) -> float:
    """Linear interpolation between the closest ranks (numpy's default method); NaN for none.
    For a few samples (tens of objects in a cluster run) where nearest rank would jump."""
    s = sorted(values)
    if not s:
        return math.nan
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)
