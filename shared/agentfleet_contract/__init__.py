"""The agentfleet.io/v1alpha1 API: the single source of truth for the CRDs."""

from agentfleet_contract.agentfleet import AgentFleet, AgentFleetSpec, AgentFleetStatus
from agentfleet_contract.common import API_VERSION, GROUP, VERSION, Condition
from agentfleet_contract.modelreplicaset import ModelReplicaSet, ModelReplicaSetSpec, ModelReplicaSetStatus
from agentfleet_contract.resources import BY_KIND, RESOURCES, Resource
from agentfleet_contract.vectorindex import VectorIndex, VectorIndexSpec, VectorIndexStatus

__all__ = [
    "API_VERSION",
    "BY_KIND",
    "GROUP",
    "RESOURCES",
    "VERSION",
    "AgentFleet",
    "AgentFleetSpec",
    "AgentFleetStatus",
    "Condition",
    "ModelReplicaSet",
    "ModelReplicaSetSpec",
    "ModelReplicaSetStatus",
    "Resource",
    "VectorIndex",
    "VectorIndexSpec",
    "VectorIndexStatus",
]
