"""What status says about a ModelReplicaSet: Ready, Progressing, Degraded and ScalingLimited,
composed from a Summary of what one reconcile found and did. Ready is True only when the
desired number of replicas is ready and serving: never before."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from agentfleet_contract.conditions import DEGRADED, PROGRESSING, READY, SCALING_LIMITED, set_condition

Verdict = tuple[bool, str, str]  # (status, reason, message) of one condition


@dataclass(frozen=True)
class ConditionCause:
    """Why a replica or the set is held back: a condition's reason and message."""

    reason: str
    message: str


@dataclass
class Summary:
    """What the controller found and did in one reconcile, for conditions."""

    desired: int
    replicas: int  # active + draining
    ready: int  # ready and serving
    current: int  # active replicas of the current spec
    outdated: int
    draining: int = 0
    starting: int = 0  # active, not ready
    invalid: str | None = None  # validation error: nothing is done
    capacity_error: str | None = None  # ModelDoesNotFit message: no new pods
    unplaced: ConditionCause | None = None  # the planner's reason and message
    unplaced_count: int = 0
    limited: ConditionCause | None = None  # autoscaling min/max clamp
    failures: list[ConditionCause] = field(default_factory=list)  # restarting / lost replicas
    waiting: str = ""


def compose_conditions(
    conditions: list[dict[str, Any]], s: Summary, generation: int, now: str | None = None
) -> list[dict[str, Any]]:
    """Ready / Progressing / Degraded / ScalingLimited from a Summary."""
    if s.invalid is not None:
        verdicts = {
            READY: (False, "InvalidSpec", s.invalid),
            PROGRESSING: (False, "InvalidSpec", "nothing is changed until the spec is valid"),
        }
    elif s.capacity_error is not None:
        verdicts = {
            READY: (s.desired > 0 and s.ready >= s.desired, "ModelDoesNotFit", s.capacity_error),
            PROGRESSING: (False, "ModelDoesNotFit", "no replica is created until the model fits: " + s.capacity_error),
            SCALING_LIMITED: (True, "ModelDoesNotFit", s.capacity_error),
        }
    else:
        verdicts = {
            READY: _ready(s),
            PROGRESSING: _progressing(s),
            DEGRADED: _degraded(s),
            SCALING_LIMITED: _scaling_limited(s),
        }
    c = list(conditions)
    for type_, (status, reason, message) in verdicts.items():
        c = set_condition(c, type_, status, reason, message, generation, now)
    return c


def _ready(s: Summary) -> Verdict:
    if s.desired == 0:
        return True, "ScaledToZero", "spec asks for 0 replicas"
    if s.ready >= s.desired:
        return True, "AllReplicasReady", f"{s.ready} of {s.desired} replicas ready"
    if s.unplaced is not None:
        return (
            False,
            s.unplaced.reason,
            f"{s.ready} of {s.desired} replicas ready; {s.unplaced_count} cannot be placed: {s.unplaced.message}",
        )
    return False, "ReplicasNotReady", f"{s.ready} of {s.desired} replicas ready"


def _progressing(s: Summary) -> Verdict:
    if s.outdated:
        waiting = f"; {s.waiting}" if s.waiting else ""
        return True, "RollingUpdate", f"{s.current} of {s.current + s.outdated} replicas run the current spec{waiting}"
    if s.unplaced is not None:
        return False, s.unplaced.reason, s.unplaced.message
    if s.draining:
        return True, "ScalingDown", f"draining {s.draining} replica(s)"
    if s.current < s.desired:
        # What new replicas wait for (the model cache being filled), when something holds them.
        waiting = f"; {s.waiting}" if s.waiting else ""
        return True, "ScalingUp", f"{s.current} of {s.desired} replicas exist{waiting}"
    if s.starting:
        return True, "ReplicasStarting", f"{s.starting} replica(s) loading"
    return False, "ReplicasUpToDate", f"{s.current} replica(s) run the current spec"


def _degraded(s: Summary) -> Verdict:
    if not s.failures:
        return False, "AsExpected", "no replica failed"
    first = s.failures[0]
    more = f" (and {len(s.failures) - 1} more)" if len(s.failures) > 1 else ""
    return True, first.reason, first.message + more


def _scaling_limited(s: Summary) -> Verdict:
    if s.unplaced is not None:
        return (
            True,
            s.unplaced.reason,
            f"{s.unplaced_count} of {s.desired} replicas cannot be placed: {s.unplaced.message}",
        )
    if s.limited is not None:
        return True, s.limited.reason, s.limited.message
    return False, "DesiredReplicasPlaced", "every desired replica has a placement"


def strip_transition_times(conditions: Iterable[Mapping[str, Any]]) -> list[tuple]:
    """Conditions compared for change; lastTransitionTime moves only with status anyway."""
    return sorted(
        (c.get("type"), c.get("status"), c.get("reason"), c.get("message"), c.get("observedGeneration"))
        for c in conditions
    )
