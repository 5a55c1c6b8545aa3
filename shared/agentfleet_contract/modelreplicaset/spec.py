"""ModelReplicaSetSpec: the replica set's desired state, assembled from this package's parts, and its rules."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from agentfleet_contract.common import Model, default_obj
from agentfleet_contract.modelreplicaset.adapters import Adapter
from agentfleet_contract.modelreplicaset.autoscaling import Autoscaling
from agentfleet_contract.modelreplicaset.engine import Engine, ModelSource
from agentfleet_contract.modelreplicaset.placement import GPU, Lifecycle, Placement
from agentfleet_contract.modelreplicaset.routing import InferencePoolSpec, Routing
from agentfleet_contract.pod_template import POD_TEMPLATE_DESCRIPTION, ModelReplicaSetPodTemplate
from agentfleet_contract.rules import Rule


def _served(spec: Any) -> str:
    return spec.model.served_name or spec.model.name


class ModelReplicaSetSpec(Model):
    rules = (
        Rule(
            cel=(
                "!has(self.adapters) || self.adapters.all(a, "
                "a.name != (has(self.model.servedName) ? self.model.servedName : self.model.name))"
            ),
            message=(
                "spec.adapters[].name must differ from the model's served name: clients would not tell them apart; "
                "rename the adapter"
            ),
            check=lambda s: all(a.name != _served(s) for a in s.adapters),
            field_path=".adapters",
        ),
        Rule(
            cel="self.engine.device != 'CPU' || (!has(self.gpu.product) && !has(self.gpu.memory))",
            message=(
                "spec.gpu.product and spec.gpu.memory choose GPUs, and with spec.engine.device CPU a replica takes "
                "none: unset them"
            ),
            check=lambda s: s.engine.device != "CPU" or (s.gpu.product is None and s.gpu.memory is None),
            field_path=".gpu",
        ),
    )

    model: ModelSource = Field(description="The model to serve and how it is named.")
    engine: Engine = default_obj("vLLM engine settings for every replica.", Engine)
    gpu: GPU = default_obj(
        "Which GPUs a replica runs on; each replica takes tensorParallelSize x pipelineParallelSize of them.", GPU
    )
    placement: Placement = default_obj("Topology-aware placement of replicas.", Placement)
    replicas: int = Field(
        default=1,
        ge=0,
        le=1000,
        description="Replica count while autoscaling is disabled; kubectl scale, HPA and KEDA write it.",
    )
    autoscaling: Autoscaling = default_obj("Scaling on queue depth and goodput read from Prometheus.", Autoscaling)
    routing: Routing = default_obj("How agent calls are spread over replicas.", Routing)
    lifecycle: Lifecycle = default_obj("Draining, startup and restart timing.", Lifecycle)
    adapters: list[Adapter] = Field(
        default_factory=list,
        max_length=256,
        description=(
            "LoRA adapters served on top of the model: loaded into every ready replica at run time (vLLM's adapter "
            "API) "
            "and unloaded when removed here, without restarting replicas."
        ),
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    inference_pool: InferencePoolSpec | None = Field(
        default=None,
        description=(
            "Publish a Gateway API Inference Extension InferencePool (inference.networking.k8s.io/v1) named after "
            "this set, "
            "selecting its serving replicas, so a cluster's gateway can front them; unset publishes none."
        ),
    )
    pod_template: ModelReplicaSetPodTemplate | None = Field(
        default=None, description=POD_TEMPLATE_DESCRIPTION + " Changing it rolls the replicas."
    )
