"""Topology-aware placement of model replicas on GPU nodes: a pure planner.

Input: the node inventory (allocatable GPUs, GPUs already held by pods, GPU product and memory
labels, topology labels, taints, cordons) and the replicas to place, each a tensor-parallel group
of TP x PP GPUs. Output: per replica the nodes and GPU counts it gets, or the exact reason it gets
none. The controller writes a plan into each pod as required node affinity, so the real
kube-scheduler still binds (and still refuses if the cluster moved under the plan).

Rules, in order of precedence, and the module that applies each:
- eligibility: product and memory labels, nodeSelector, taints, cordons, NotReady nodes;
- types.pod_shape: a replica that fits on one node is one pod on one node (its tensor-parallel
  group never leaves the node's NVLink domain); a larger one is a gang of equal pods, all inside
  one topology block (and one NVLink domain when a tensor-parallel group spans nodes), placed all
  or nothing (planner);
- spread: across zones or nodes, Preferred or Required (max skew 1);
- planner: best fit -- the node whose free GPUs leave the least remainder, ties to the topology
  block with the fewest free GPUs, so whole nodes and blocks stay free for large groups; groups
  largest first; replicas already placed keep their nodes, only new ones are planned;
- reasons: why a replica stays unplaced; inventory: nodes from the API and the free-GPU ledger;
  status: to and from the ModelReplicaSet API.
"""

from agentfleet.placement.eligibility import MEMORY_MATCH_TOLERANCE, eligible_gpu_memory_mib, ineligibility
from agentfleet.placement.inventory import (
    GPU_MEMORY_LABEL,
    GPU_PRODUCT_LABEL,
    MODELREPLICASET_LABEL,
    REPLICA_LABEL,
    Node,
    Taint,
    Toleration,
    TopologyKeys,
    inventory_from_k8s,
    pinned_node,
    pod_gpus,
    slot_inventory_from_k8s,
)
from agentfleet.placement.planner import plan
from agentfleet.placement.status import (
    assignment_from_status,
    inventory_for,
    needs_for,
    placement_status,
    replica_key,
    requests_for,
)
from agentfleet.placement.types import Assignment, Plan, ReplicaNeeds, ReplicaRequest, Unplaced, pod_shape

__all__ = [
    "GPU_MEMORY_LABEL",
    "GPU_PRODUCT_LABEL",
    "MEMORY_MATCH_TOLERANCE",
    "MODELREPLICASET_LABEL",
    "REPLICA_LABEL",
    "Assignment",
    "ReplicaNeeds",
    "Node",
    "Plan",
    "ReplicaRequest",
    "Taint",
    "Toleration",
    "TopologyKeys",
    "Unplaced",
    "assignment_from_status",
    "needs_for",
    "eligible_gpu_memory_mib",
    "ineligibility",
    "inventory_for",
    "inventory_from_k8s",
    "slot_inventory_from_k8s",
    "placement_status",
    "pinned_node",
    "plan",
    "pod_gpus",
    "pod_shape",
    "replica_key",
    "requests_for",
]
