"""The autoscale benchmark's ceilings (e2e/bench/autoscale_bench.py, ``--oracle``) know what they
claim to know and no more: the burst windows, or each burst's start."""

from __future__ import annotations

from typing import Any

import pytest


def test_the_window_oracle_holds_from_a_load_time_before_each_window_and_the_onset_oracle_before_each_burst(
    bench: Any,
) -> None:
    w = bench.Workload.make(60.0, 0.12, 201, 150.0)
    lead = 240.0 + 15.0  # the longest load and one period
    (s1, _), (s2, _) = w.bursts
    # The windows (12-21 and 33-45 min of 60) open at 720 s and 1,980 s; both hold to the burst's
    # end plus one task SLO (60 s).
    flat = lambda spans: [x for span in spans for x in span]  # noqa: E731
    assert flat(bench.oracle_spans(w, "window")) == pytest.approx(
        [720.0 - lead, s1 * 3600 + 210.0, 1980.0 - lead, s2 * 3600 + 210.0]
    )
    assert flat(bench.oracle_spans(w, "onset")) == pytest.approx(
        [s1 * 3600 - lead, s1 * 3600 + 210.0, s2 * 3600 - lead, s2 * 3600 + 210.0]
    )
    o = bench.Oracle(bench.oracle_spans(w, "onset"), 8, 4)
    assert o(None, s1 * 3600 - lead - 1.0) == 4 and o(None, s1 * 3600) == 8 and o(None, s1 * 3600 + 210.0) == 4
