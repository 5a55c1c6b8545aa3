"""Pure decisions of the ModelReplicaSet controller: which replicas should exist, which one to
remove, when a failed gang may restart, how a spec change rolls, and what status says about it.

The controller observes (the ModelReplicaSet, its pods, the node inventory, vLLM's /metrics),
calls these functions and carries out what they return; nothing here does I/O. A replica is one
vLLM engine: one pod, or a gang of pods (leader + workers) on several nodes. The parts, in the
order a reconcile uses them: names, observe (pods -> PodView/ReplicaView), health (whole,
creating, lost, failed; phase), plan (desired count and one RolloutStep), summary (conditions).

The replica rollout, not spec.rollout: that is the AgentFleet's evaluation gate (agentfleet.gate,
docs/evaluation-gate.md), which a model change of a gated set waits for before this rollout moves on.
"""

from agentfleet.replica_rollout.actions import (
    DRAIN_POLL_SECONDS,
    Desired,
    ReplicaState,
    RolloutStep,
    Timing,
    desired_replicas,
    removal_order,
    rollout_step,
)
from agentfleet.replica_rollout.health import (
    UNSCHEDULABLE_GRACE_SECONDS,
    Health,
    replica_health,
    replica_phase,
    restart_backoff,
)
from agentfleet.replica_rollout.names import HASH_IN_NAME, new_replica_names, parse_replica_name, replica_name
from agentfleet.replica_rollout.observe import (
    DRAINING_SINCE_ANNOTATION,
    IN_FLIGHT_METRICS,
    PodView,
    ReplicaView,
    observe_pod,
    parse_in_flight,
    parse_time,
    rfc3339,
)
from agentfleet.replica_rollout.phases import (
    ACTIVE,
    DRAINING,
    FAILED,
    LOADING,
    PENDING,
    READY_PHASE,
    STARTED,
    TERMINATING,
)
from agentfleet.replica_rollout.summary import (
    SCALING_LIMITED,
    ConditionCause,
    Summary,
    compose_conditions,
    strip_transition_times,
)

__all__ = [
    "ACTIVE",
    "DRAINING",
    "DRAINING_SINCE_ANNOTATION",
    "DRAIN_POLL_SECONDS",
    "FAILED",
    "HASH_IN_NAME",
    "IN_FLIGHT_METRICS",
    "LOADING",
    "PENDING",
    "READY_PHASE",
    "SCALING_LIMITED",
    "STARTED",
    "TERMINATING",
    "UNSCHEDULABLE_GRACE_SECONDS",
    "ConditionCause",
    "Desired",
    "Health",
    "PodView",
    "ReplicaState",
    "ReplicaView",
    "RolloutStep",
    "Summary",
    "Timing",
    "compose_conditions",
    "desired_replicas",
    "new_replica_names",
    "observe_pod",
    "parse_in_flight",
    "parse_replica_name",
    "parse_time",
    "rollout_step",
    "removal_order",
    "replica_health",
    "replica_name",
    "replica_phase",
    "restart_backoff",
    "rfc3339",
    "strip_transition_times",
]
