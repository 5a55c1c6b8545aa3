"""The hourly task figures from the finished-task record (agentfleet_contract.fleet_stats, pure parts)."""

from __future__ import annotations

import pytest
from agentfleet_contract.fleet_stats import group_counts, parse_member, summarize

from agentfleet_runtime.store.lua import FINISHED_CAP


def test_members_parse_and_bad_ones_are_skipped() -> None:
    assert parse_member("abc|12.500|2500000|done") == (12.5, 2500000)
    assert parse_member("id|with|pipes|3.000|10|dead") == (3.0, 10)  # ids are uuids, but be safe
    assert parse_member("garbage") is None
    assert parse_member("a|x|1|done") is None


def test_summary_of_a_window() -> None:
    members = [
        f"t{i}|{d:.3f}|{c}|done"
        for i, (d, c) in enumerate([(10, 1_000_000), (20, 3_000_000), (30, 2_000_000), (40, 2_000_000)])
    ]
    s = summarize([*members, "broken"], depth=5, in_flight=2)
    assert (s.queue_depth, s.in_flight, s.tasks_per_hour) == (5, 2, 4)
    assert s.p95_seconds == 40.0
    assert s.mean_cost == pytest.approx(0.002)
    assert not s.capped


def test_empty_window_reports_unknown_not_zero() -> None:
    s = summarize([], depth=0, in_flight=0)
    assert (s.tasks_per_hour, s.p95_seconds, s.mean_cost) == (0, None, None)


def test_capped_record_is_flagged() -> None:
    assert summarize((f"t{i}|1.000|0|done" for i in range(FINISHED_CAP)), depth=0, in_flight=0).capped


def test_group_counts() -> None:
    assert group_counts([{"name": "workers", "pending": 3, "lag": 7}], 10) == (7, 3)
    assert group_counts([{"name": "workers", "pending": 3, "lag": None}], 10) == (7, 3)
    assert group_counts([{"name": "other", "pending": 1, "lag": 1}], 4) == (4, 0)
    assert group_counts([], 0) == (0, 0)
