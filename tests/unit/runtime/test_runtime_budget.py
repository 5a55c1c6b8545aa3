"""Budgets: effective limits, cost arithmetic, which budget stops a task."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agentfleet_runtime.core.budget import Prices, TreeUsage, child_deadline, effective_limits, exhausted
from agentfleet_runtime.core.types import Limits, StopReason, Usage

FLEET = Limits(
    max_steps=30, max_tokens=200_000, timeout_seconds=900, max_cost=Decimal("1.00"), max_fan_out=4, max_depth=2
)


def test_overrides_only_lower_fleet_limits():
    lim = effective_limits(FLEET, {"maxSteps": 5, "maxTokens": 10_000_000, "maxCost": "0.10", "timeoutSeconds": 60})
    assert (lim.max_steps, lim.max_tokens, lim.max_cost, lim.timeout_seconds) == (5, 200_000, Decimal("0.10"), 60)
    assert effective_limits(FLEET, {"maxCost": "5"}).max_cost == Decimal("1.00")
    assert effective_limits(FLEET, None) is FLEET


@pytest.mark.parametrize(
    "bad, msg",
    [
        ({"maxSteps": 0}, "positive"),
        ({"maxSteps": "3"}, "number"),
        ({"maxCost": "abc"}, "decimal"),
        ({"nope": 1}, "unknown"),
        ({"maxCost": "-1"}, "non-negative"),
    ],
)
def test_bad_overrides_are_refused_with_a_message(bad, msg):
    with pytest.raises(ValueError, match=msg):
        effective_limits(FLEET, bad)


def test_cost_is_exact_and_rounds_up():
    p = Prices(Decimal("0.50"), Decimal("1.50"))
    assert p.cost_nanos(Usage(1_000_000, 1_000_000)) == 2_000_000_000
    assert p.cost_nanos(Usage(1, 0)) == 500  # 0.5e-6 currency units
    assert Prices(Decimal("0.3"), Decimal(0)).cost_nanos(Usage(1, 0)) == 300
    assert Prices(Decimal("0.0000001"), Decimal(0)).cost_nanos(Usage(1, 0)) == 1  # never free
    assert Prices().cost_nanos(Usage(10, 10)) == 0


def test_exhausted_order_and_tree_accounting():
    now = 1000.0
    assert exhausted(FLEET, FLEET, 0, TreeUsage(), now, now + 10) is None
    assert exhausted(FLEET, FLEET, 0, TreeUsage(), now, now) is StopReason.TIMEOUT
    assert exhausted(FLEET, FLEET, 30, TreeUsage(), now, now + 10) is StopReason.MAX_STEPS
    assert exhausted(FLEET, FLEET, 1, TreeUsage(tokens=200_000), now, now + 10) is StopReason.MAX_TOKENS
    assert exhausted(FLEET, FLEET, 1, TreeUsage(cost_nanos=1_000_000_000), now, now + 10) is StopReason.MAX_COST
    # A child checks the tree against the root's limits, and its steps against its own.
    child = Limits(max_steps=3)
    assert exhausted(child, FLEET, 3, TreeUsage(), now, now + 10) is StopReason.MAX_STEPS
    assert exhausted(child, FLEET, 0, TreeUsage(tokens=199_999), now, now + 10) is None


def test_child_never_outlives_parent():
    assert child_deadline(100.0, 50.0, 900) == 100.0
    assert child_deadline(1000.0, 50.0, 10) == 60.0


def test_limits_round_trip():
    assert Limits.from_json(FLEET.to_json()) == FLEET
    assert Limits.from_json(Limits().to_json()) == Limits()
