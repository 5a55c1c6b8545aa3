"""The one percentile (agentfleet_contract.percentiles) that the fleet's status, the evaluation's
summaries, the benches and the demo's report all read their figures through."""

from __future__ import annotations

import math

import numpy as np
import pytest
from agentfleet_contract.fleet_stats import summarize
from agentfleet_contract.percentiles import interpolated_percentile, percentile


def test_percentile_is_the_nearest_rank_a_value_that_occurred() -> None:
    assert percentile([3.0, 1.0, 2.0, 4.0], 50) == 2.0  # unsorted input; the lower middle
    assert percentile([1.0, 2.0, 3.0, 4.0], 51) == 3.0
    assert percentile(list(range(1, 21)), 95) == 19
    assert percentile(list(range(1, 21)), 96) == 20
    assert percentile([5.0], 0) == 5.0
    assert percentile([5.0], 1) == 5.0
    assert percentile(list(range(1, 101)), 95) == 95
    assert percentile(list(range(1, 101)), 99) == 99
    assert percentile(list(range(1, 101)), 100) == 100


def test_percentile_of_nothing_is_what_the_caller_asks_for() -> None:
    assert math.isnan(percentile([], 95))
    assert percentile([], 95, empty=None) is None


@pytest.mark.parametrize("q", [0, 5, 50, 90, 95, 99, 100])
def test_interpolated_percentile_is_numpys_linear_method(q: float) -> None:
    values = [0.3, 7.1, 2.2, 9.9, 4.4, 1.0, 5.5]
    assert interpolated_percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert math.isnan(interpolated_percentile([], q))


def test_the_fleet_p95_in_status_is_this_percentile_on_the_0_to_100_scale() -> None:
    members = [f"t{i}|{d:.3f}|1|done" for i, d in enumerate(range(1, 21))]
    assert summarize(members, depth=0, in_flight=0).p95_seconds == 19.0
