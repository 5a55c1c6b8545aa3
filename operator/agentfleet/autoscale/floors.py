"""Replica floors from outside the reactive policy, and how a decision names the term behind it.

The policy (policy.decide) sizes the fleet from what it measures now: the *reactive* terms (queue
depth, KV cache, goodput, tasks in flight). The learned profile (forecast.py) and the schedule in
the spec (schedule.py) each give a floor that is merged with that by max: a floor can only add
replicas, never take away what load asks for. ``Floor.term`` names it in the decision. The one
thing the profile may take from the reactive terms is a rise ordered in a burst it expects to be
over before the replicas load (``Hold``): those GPUs would arrive to an empty queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

REACTIVE = "reactive"
PREDICTIVE = "predictive"
STANDING = "standing"
SCHEDULED = "scheduled"
MINIMUM = "minReplicas"
TERMS = (REACTIVE, PREDICTIVE, STANDING, SCHEDULED, MINIMUM)


@dataclass(frozen=True)
class Floor:
    replicas: int
    term: str  # one of PREDICTIVE, STANDING, SCHEDULED
    why: str  # the figures, for the decision's reason


@dataclass(frozen=True)
class Hold:
    """Hold the reactive terms' rise back until ``until``: the learned profile expects the burst
    now on to be over before a replica ordered for it could load (forecast.py). Floors still apply."""

    until: float
    why: str


def merge_floors(raw: int, floors: Sequence[Floor]) -> tuple[int, str, Floor | None]:
    """The recommendation after the floors, the term that set it, and the floor that won (None:
    the reactive terms, also on a tie)."""
    best = max(floors, key=lambda f: f.replicas, default=None)
    if best is None or best.replicas <= raw:
        return raw, REACTIVE, None
    return best.replicas, best.term, best
