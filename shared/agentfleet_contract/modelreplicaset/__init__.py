"""ModelReplicaSet: a fleet of vLLM replicas serving one model.

The API is split by meaning across this package's modules; every public name is importable from
here, as it was from the single module it grew from.
"""

from __future__ import annotations

from pydantic import Field

from agentfleet_contract.common import Model
from agentfleet_contract.modelreplicaset.adapters import LORA_RANKS, Adapter
from agentfleet_contract.modelreplicaset.autoscaling import Autoscaling, GoodputSLO, ScheduledCapacity
from agentfleet_contract.modelreplicaset.engine import (
    MANAGED_FLAGS,
    MAX_GPUS_PER_REPLICA,
    Engine,
    EnvVar,
    ModelCache,
    ModelGeometry,
    ModelSource,
    gpus_per_replica,
)
from agentfleet_contract.modelreplicaset.placement import GPU, Lifecycle, Placement
from agentfleet_contract.modelreplicaset.routing import EndpointPicker, Hedging, InferencePoolSpec, Routing
from agentfleet_contract.modelreplicaset.spec import ModelReplicaSetSpec
from agentfleet_contract.modelreplicaset.status import (
    CanaryFleet,
    CanaryStatus,
    CapacityStatus,
    ForecastStatus,
    ModelCacheStatus,
    ModelReplicaSetStatus,
    ObservedMetrics,
    ReplicaPlacement,
)


class ModelReplicaSet(Model):
    api_version: str = Field(default="agentfleet.io/v1alpha1", description="APIVersion of this object.")
    kind: str = Field(default="ModelReplicaSet", description="Kind of this object.")
    metadata: dict = Field(default_factory=dict, description="Standard object metadata.")
    spec: ModelReplicaSetSpec = Field(description="Desired state of the model fleet.")
    status: ModelReplicaSetStatus | None = Field(default=None, description="Observed state of the model fleet.")


__all__ = [
    "Adapter",
    "Autoscaling",
    "CanaryFleet",
    "CanaryStatus",
    "CapacityStatus",
    "EndpointPicker",
    "Engine",
    "EnvVar",
    "ForecastStatus",
    "GPU",
    "GoodputSLO",
    "Hedging",
    "InferencePoolSpec",
    "LORA_RANKS",
    "Lifecycle",
    "MANAGED_FLAGS",
    "MAX_GPUS_PER_REPLICA",
    "ModelCache",
    "ModelCacheStatus",
    "ModelGeometry",
    "ModelReplicaSet",
    "ModelReplicaSetSpec",
    "ModelReplicaSetStatus",
    "ModelSource",
    "ObservedMetrics",
    "Placement",
    "ReplicaPlacement",
    "Routing",
    "ScheduledCapacity",
    "gpus_per_replica",
]
