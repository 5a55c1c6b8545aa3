"""The credit for replicas still loading is lifted when the load outgrew the order (credit.lift)."""

from __future__ import annotations

import math

from agentfleet.autoscale.goodput import TPOT_METRIC, Goodput, goodput, objectives_from_slo
from agentfleet.autoscale.policy import (
    FleetView,
    Observation,
    PolicyConfig,
    PolicyState,
    ReplicaSample,
    Starting,
    decide,
)

C = PolicyConfig(
    min_replicas=1,
    max_replicas=20,
    up_window_seconds=0.0,
    down_window_seconds=60.0,
    window_seconds=60.0,
    max_up_step=4,
    initial_load_seconds=200.0,
)


def gp(fraction: float, n: int = 200) -> Goodput:
    good = round(fraction * n)
    return goodput(objectives_from_slo(0, 50, 0), {TPOT_METRIC: [(0.05, float(good)), (math.inf, float(n))]})


def samples() -> tuple[ReplicaSample, ...]:
    # Closed-loop agents with a full KV cache: the requests in the system stay flat in a burst.
    return tuple(ReplicaSample(f"r{i}", 0.0, 20.0, 0.5) for i in range(2))


def ordered() -> PolicyState:
    """2 replicas at goodput 0.3 with 10 agent tasks: an order of 7, 6 at once (step 4)."""
    out = decide(
        C,
        PolicyState.initial(C),
        FleetView(current=2, ready=("r0", "r1")),
        Observation(at=0.0, samples=samples(), goodput=gp(0.3), tasks=10.0),
    )
    assert out.decision.desired == 6 and out.decision.recommendation == 7
    return out.state


LOADING = FleetView(current=6, ready=("r0", "r1"), starting=tuple(Starting(f"s{i}", 15.0) for i in range(4)))


def test_a_large_rise_in_agent_tasks_lifts_the_credit() -> None:
    # 15 s later the tasks have quadrupled. Goodput (0.25) cannot show it yet: floored at 0.2,
    # an order sized at 0.3 can never see "under half" of it. The old policy held at 7.
    obs = Observation(at=15.0, samples=samples(), goodput=gp(0.25), tasks=40.0)
    d = decide(C, ordered(), LOADING, obs).decision
    assert d.desired == 10, d.reason  # 6 + maxScaleUpStep 4, towards 7 x 40 / 10 = 28
    assert "40 agent tasks, up from 10" in d.reason


def test_goodput_zero_for_a_whole_window_since_the_order_lifts_the_credit() -> None:
    # 75 s after the order nothing has met the SLO over the 60 s window, its replicas still load.
    obs = Observation(at=75.0, samples=samples(), goodput=gp(0.0), tasks=12.0)
    fleet = FleetView(current=6, ready=("r0", "r1"), starting=tuple(Starting(f"s{i}", 75.0) for i in range(4)))
    d = decide(C, ordered(), fleet, obs).decision
    assert d.desired == 10, d.reason  # ceil(2 x 0.95 / 0.2) = 10
    assert "for the whole 60s window since the last order" in d.reason


def test_zero_goodput_within_the_first_window_after_the_order_is_still_lag() -> None:
    # 30 s after the order the window still holds the time before it: keep the credit.
    obs = Observation(at=30.0, samples=samples(), goodput=gp(0.0), tasks=12.0)
    fleet = FleetView(current=6, ready=("r0", "r1"), starting=tuple(Starting(f"s{i}", 30.0) for i in range(4)))
    d = decide(C, ordered(), fleet, obs).decision
    assert d.desired == 7, d.reason
