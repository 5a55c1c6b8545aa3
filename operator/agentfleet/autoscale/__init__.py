"""Pure scaling policies (no kopf, kubernetes or Prometheus client here).

- ``goodput``: SLO attainment from histogram buckets (SLO rounded down to a bucket edge, noted).
- ``policy``: the ModelReplicaSet policy, one evaluation as named steps (docs/autoscaling.md);
  ``terms``: its terms as pure functions; ``state``: its config and memory; ``signals``: its inputs.
- ``workers``: the AgentFleet workers policy (task backlog + in-flight tasks per worker).
- ``common``: decisions, conditions, stabilization windows, step and min/max limits.
"""

from agentfleet.autoscale.common import (
    METRICS_AVAILABLE,
    SCALING_ACTIVE,
    SCALING_LIMITED,
    ConditionUpdate,
    Decision,
    stabilize,
)
from agentfleet.autoscale.goodput import Goodput, Objective, goodput, merge_buckets, objectives_from_slo, share_within
from agentfleet.autoscale.policy import (
    Capacity,
    FleetView,
    LoadTime,
    Observation,
    Observed,
    Outcome,
    PolicyConfig,
    PolicyState,
    ReplicaSample,
    Starting,
    decide,
)
from agentfleet.autoscale.workers import WorkerPolicyConfig, WorkerSignals, WorkerState, decide_workers

__all__ = [
    "METRICS_AVAILABLE",
    "SCALING_ACTIVE",
    "SCALING_LIMITED",
    "Capacity",
    "ConditionUpdate",
    "Decision",
    "FleetView",
    "Goodput",
    "LoadTime",
    "Objective",
    "Observation",
    "Observed",
    "Outcome",
    "PolicyConfig",
    "PolicyState",
    "ReplicaSample",
    "Starting",
    "WorkerPolicyConfig",
    "WorkerSignals",
    "WorkerState",
    "decide",
    "decide_workers",
    "goodput",
    "merge_buckets",
    "objectives_from_slo",
    "share_within",
    "stabilize",
]
