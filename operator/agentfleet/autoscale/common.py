"""Shared pieces of the scaling policies: conditions to set, decisions, stabilization.

Stabilization follows the HPA's recommendation-history model, with one deliberate choice per
direction:

- scale UP to the *minimum* recommendation of the last ``up_window`` seconds: a rise must have
  been asked for during the whole window (one noisy evaluation cannot order GPUs);
- scale DOWN to the *maximum* recommendation of the last ``down_window`` seconds: every
  evaluation in the window must agree that fewer replicas suffice (stateful agent replicas are
  expensive to lose and slow to get back, so the down window is the long one).

Between the two the count holds, which is what keeps steady load from flapping: a value inside
[max over down window, min over up window] is never acted on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agentfleet_contract.conditions import METRICS_AVAILABLE, SCALING_ACTIVE, SCALING_LIMITED

# Condition types the autoscaler owns on a ModelReplicaSet / AgentFleet.
# With autoscaling on, these types belong to the autoscaler's field manager alone: the
# ModelReplicaSet controller applies its own (Ready, Progressing, Degraded) and leaves these be.
AUTOSCALER_CONDITIONS = frozenset({SCALING_ACTIVE, SCALING_LIMITED, METRICS_AVAILABLE})

Recommendation = tuple[float, int]  # (time in seconds, recommended replicas)


@dataclass(frozen=True)
class ConditionUpdate:
    type: str
    status: bool
    reason: str  # CamelCase
    message: str


@dataclass(frozen=True)
class Decision:
    """What one evaluation concluded; the controller writes it to status and an Event."""

    current: int
    desired: int
    recommendation: int | None  # the raw (unstabilized) recommendation; None when holding blind
    reason: str  # "3 -> 5: 41 waiting > 3 x 8 target; goodput 0.81 < 0.95" or "holding 3: ..."
    conditions: tuple[ConditionUpdate, ...]
    warning: str | None = None  # CamelCase Event reason when the decision is a degraded one
    # Which term set the recommendation (autoscale/floors.py: reactive, predictive, standing,
    # scheduled, minReplicas); shown in the reason, status.lastScaleTerm and the Event.
    term: str = "reactive"

    @property
    def changed(self) -> bool:
        return self.desired != self.current


def prune(history: Sequence[Recommendation], now: float, keep_seconds: float) -> tuple[Recommendation, ...]:
    return tuple((t, r) for t, r in history if t > now - keep_seconds)


def stabilize(
    history: Sequence[Recommendation],
    now: float,
    current: int,
    up_window: float,
    down_window: float,
    slack: float = 0.0,
) -> int:
    """The replica count to move to, given the recommendation history (which includes ``now``).

    A scale-down also needs the history to cover the down window (within ``slack``, one
    evaluation period): right after the autoscaler starts - or restarts - it has not watched
    long enough to know that fewer replicas suffice, so it holds."""
    up = [r for t, r in history if t > now - up_window or t == now]
    down = [r for t, r in history if t > now - down_window or t == now]
    up_floor = min(up) if up else current
    down_ceiling = max(down) if down else current
    oldest = min((t for t, _ in history), default=now)
    if down_window > 0 and oldest > now - down_window + slack:
        down_ceiling = max(down_ceiling, current)
    if up_floor > current:
        return up_floor
    if down_ceiling < current:
        return down_ceiling
    return current


@dataclass(frozen=True)
class Bounds:
    min_replicas: int
    max_replicas: int
    max_up_step: int
    max_down_step: int


def bound(target: int, current: int, b: Bounds) -> tuple[int, ConditionUpdate]:
    """Apply step and min/max limits; returns the count and the ScalingLimited condition."""
    limited: ConditionUpdate | None = None
    out = target
    if out > current + b.max_up_step:
        out = current + b.max_up_step
        limited = ConditionUpdate(
            SCALING_LIMITED, True, "ScaleUpLimit", f"wanted {target}, at most {b.max_up_step} more per decision"
        )
    elif out < current - b.max_down_step:
        out = current - b.max_down_step
        limited = ConditionUpdate(
            SCALING_LIMITED, True, "ScaleDownLimit", f"wanted {target}, at most {b.max_down_step} fewer per decision"
        )
    if out > b.max_replicas:
        out = b.max_replicas
        limited = ConditionUpdate(
            SCALING_LIMITED, True, "TooManyReplicas", f"wanted {target}, capped at maxReplicas {b.max_replicas}"
        )
    elif out < b.min_replicas:
        out = b.min_replicas
        if target < b.min_replicas:
            limited = ConditionUpdate(
                SCALING_LIMITED, True, "TooFewReplicas", f"wanted {target}, kept at minReplicas {b.min_replicas}"
            )
    if limited is None:
        limited = ConditionUpdate(
            SCALING_LIMITED, False, "DesiredWithinRange", f"the desired count {out} is within the limits"
        )
    return out, limited
