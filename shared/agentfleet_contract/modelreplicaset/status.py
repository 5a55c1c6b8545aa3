"""ModelReplicaSet status: replicas and where they run, observed load, capacity, the forecast, the cache."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from agentfleet_contract.common import Condition, Model, SleepStatus, conditions_field


class ReplicaPlacement(Model):
    name: str = Field(max_length=253, description="Replica name; the group's pods carry it as a label.")
    nodes: list[Annotated[str, Field(max_length=253)]] = Field(
        default_factory=list, max_length=64, description="Nodes hosting the replica's pods, leader first."
    )
    gpus: int = Field(default=0, ge=0, description="GPUs the replica holds.")
    gpus_per_node: int | None = Field(default=None, ge=0, description="GPUs on each of the replica's nodes.")
    block: str | None = Field(
        default=None, max_length=253, description="Topology block (rack) of a multi-node replica."
    )
    zone: str | None = Field(default=None, max_length=253, description="Zone of the replica.")
    phase: Literal["Pending", "Loading", "Ready", "Draining", "Failed"] = Field(
        default="Pending", description="Lifecycle phase of the replica."
    )
    endpoint: str | None = Field(
        default=None, max_length=512, description="host:port of the replica's OpenAI server, for sticky routing."
    )
    restarts: int = Field(default=0, ge=0, description="Group restarts so far.")
    adapters: list[Annotated[str, Field(max_length=128)]] = Field(
        default_factory=list, max_length=256, description="spec.adapters loaded on this replica, as it last answered."
    )
    failed_at: str | None = Field(
        default=None,
        max_length=64,
        description=(
            "When the replica last failed (RFC 3339); its restart waits out the backoff from then, across operator "
            "restarts."
        ),
    )


class ObservedMetrics(Model):
    queue_depth: int | None = Field(
        default=None, description="Waiting requests summed over replicas (vllm:num_requests_waiting)."
    )
    running: int | None = Field(
        default=None, description="Running requests summed over replicas (vllm:num_requests_running)."
    )
    goodput: float | None = Field(default=None, description="Share of requests within the SLO over the window.")
    kv_cache_usage: float | None = Field(
        default=None, description="Mean KV-cache usage over replicas (vllm:kv_cache_usage_perc), 0-1."
    )
    observed_at: datetime | None = Field(default=None, description="When these figures were read.")


class CapacityStatus(Model):
    weights_bytes: int | None = Field(default=None, description="Weight memory of one replica.")
    kv_bytes_per_token: int | None = Field(default=None, description="KV-cache bytes one token takes.")
    kv_tokens_per_replica: int | None = Field(default=None, description="Tokens of KV cache one replica holds.")
    concurrent_sequences: int | None = Field(
        default=None, description="Sequences one replica holds at the configured context length."
    )
    context_tokens: int | None = Field(default=None, description="Context length the sequence count assumes.")
    gpu_memory_bytes: int | None = Field(default=None, description="Memory of one GPU the figures assume.")


class ForecastStatus(Model):
    profile_config_map: str | None = Field(
        default=None,
        max_length=253,
        description="ConfigMap (same namespace) keeping the learned demand profile across operator restarts.",
    )
    days_observed: float | None = Field(default=None, ge=0, description="Days of demand history in the profile.")
    tasks_per_replica: float | None = Field(
        default=None, ge=0, description="Agent tasks one replica carries within the SLO, as learned."
    )
    onsets_seen: int | None = Field(default=None, ge=0, description="Burst onsets remembered (the last 14 days).")
    typical_onset_tasks: float | None = Field(
        default=None,
        ge=0,
        description=(
            "Agent tasks a typical burst adds in its first load time (the size half of all burst demand came in)."
        ),
    )
    predicted_replicas: int | None = Field(
        default=None, ge=0, description="Replicas the learned daily curve needs over the next model load time."
    )
    standing_replicas: int | None = Field(
        default=None,
        ge=0,
        description="Replicas held now for burst onsets (only at the times of day bursts were seen).",
    )
    scheduled_replicas: int | None = Field(default=None, ge=0, description="Replicas a schedule window holds now.")
    standby_released_at: datetime | None = Field(
        default=None,
        description=(
            "When the standby of the burst season now on was released: today's bursts in it had come and ended, as "
            "many as any remembered day brought."
        ),
    )
    standby_gpu_hours_per_day: float | None = Field(
        default=None,
        ge=0,
        alias="standbyGPUHoursPerDay",
        description=(
            "GPU-hours a day the burst coverage holds beyond the learned curve: the price of burstCoveragePercent."
        ),
    )


class ModelCacheStatus(Model):
    model: str = Field(
        max_length=700, description="The model and revision the cache holds or is filled with (name@revision)."
    )
    phase: Literal["Filling", "Filled", "Failed"] = Field(
        description="Filling: the Job runs; Filled: replicas load from the claim; Failed: they download themselves."
    )
    job: str | None = Field(default=None, max_length=253, description="The Job that fills the cache.")
    filled_at: str | None = Field(default=None, max_length=64, description="When the Job finished filling (RFC 3339).")
    fill_seconds: int | None = Field(
        default=None, ge=0, description="How long the fill took, from the Job's start to its completion."
    )
    message: str | None = Field(
        default=None, max_length=1024, description="Why the fill failed, from the Job's conditions."
    )


class CanaryFleet(Model):
    """An AgentFleet with spec.rollout.evaluation that uses this set, and how its gate judged the canary."""

    name: str = Field(max_length=253, description="The AgentFleet's name.")
    result: Literal["Waiting", "Running", "Promoted", "Held"] = Field(
        description="Waiting (its gate has not started on the canary), Running, Promoted, or Held (held or aborted)."
    )


class CanaryStatus(Model):
    """A change of model or adapters on trial: one replica of the new spec, called only by gated fleets' candidates."""

    hash: str = Field(max_length=64, description="Hash of the model and adapters on trial (spec as written).")
    spec_hash: str | None = Field(
        default=None, max_length=64, description="Spec hash of the canary replica's pods (its name carries its start)."
    )
    phase: Literal["Serving", "Running", "Promoted", "Held"] = Field(
        description="Serving (the spec as written serves: nothing on trial), Running (the gates run), Promoted (every "
        "gated fleet passed: the set rolls on), or Held (the replicas keep the promoted model and adapters)."
    )
    ready: bool = Field(default=False, description="The canary replica is Ready: the gates may run against it.")
    replica: ReplicaPlacement | None = Field(
        default=None, description="The canary replica and where it runs (not in placements: it serves no one else)."
    )
    fleets: list[CanaryFleet] = Field(
        default_factory=list, max_length=100, description="Each gated fleet that uses the set, and its gate's result."
    )
    started_at: str | None = Field(default=None, max_length=64, description="When the canary began (RFC 3339, UTC).")
    finished_at: str | None = Field(
        default=None, max_length=64, description="When it was promoted or held (RFC 3339, UTC)."
    )
    overridden: Literal["promote", "abort"] | None = Field(
        default=None, description="Set when the agentfleet.io/gate annotation decided it instead of the gates."
    )


class ModelReplicaSetStatus(Model):
    observed_generation: int | None = Field(default=None, description="metadata.generation last acted upon.")
    replicas: int = Field(default=0, description="Replicas that exist, ready or not.")
    ready_replicas: int = Field(default=0, description="Replicas serving requests.")
    desired_replicas: int | None = Field(
        default=None, description="Replicas the operator aims for, from spec.replicas or the autoscaler."
    )
    selector: str | None = Field(
        default=None, max_length=4096, description="Label selector of the replica pods, for the scale subresource."
    )
    gpus_per_replica: int | None = Field(
        default=None, description="GPUs each replica takes (tensorParallelSize x pipelineParallelSize)."
    )
    served_model_name: str | None = Field(default=None, description="Name under which the model is served.")
    placements: list[ReplicaPlacement] = Field(
        default_factory=list,
        max_length=1000,
        description="Where each replica runs.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]},
    )
    observed: ObservedMetrics | None = Field(default=None, description="Last metrics the autoscaler read.")
    capacity: CapacityStatus | None = Field(default=None, description="Capacity model figures for one replica.")
    last_scale_time: datetime | None = Field(default=None, description="When the replica count last changed.")
    last_scale_reason: str | None = Field(
        default=None, max_length=1024, description="Why the replica count last changed, with the figures."
    )
    learned_model_load_seconds: int | None = Field(
        default=None,
        ge=0,
        description=(
            "Model load time (pod created -> Ready) the autoscaler learned from this set's replicas; replicas loading "
            "within it are credited so a burst does not order twice."
        ),
    )
    last_scale_term: Literal["reactive", "predictive", "standing", "scheduled", "minReplicas"] | None = Field(
        default=None,
        description=(
            "Which term asked for the last change: reactive (queue, goodput, tasks), predictive (learned curve), "
            "standing (burst coverage), scheduled, minReplicas."
        ),
    )
    forecast: ForecastStatus | None = Field(
        default=None, description="What the autoscaler learned of this set's demand, and what it holds for it."
    )
    model_cache: ModelCacheStatus | None = Field(
        default=None, description="Whether spec.engine.modelCache holds the model's weights yet."
    )
    sleep: SleepStatus | None = Field(
        default=None,
        description="Scale to zero (autoscaling.minReplicas 0): awake, sleeping at zero replicas, or waking.",
    )
    canary: CanaryStatus | None = Field(
        default=None,
        description="The latest change of model or adapters gated by the AgentFleets that use the set (their gates).",
    )
    conditions: list[Condition] = conditions_field()
