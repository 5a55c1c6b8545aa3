"""ModelReplicaSet spec: how requests reach replicas (hedging, the endpoint picker, the InferencePool)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agentfleet_contract.common import Model, default_obj


class Hedging(Model):
    enabled: bool = Field(
        default=False,
        description="Send a duplicate to the next replica when a call outlasts the observed percentile; with streamed "
        "calls also when "
        "its replica stops writing tokens (stalled), and route new calls around a stalled replica.",
    )
    after_percentile: int = Field(
        default=95, ge=50, le=99, description="Latency percentile of the call's kind after which it is hedged."
    )
    max_extra_percent: int = Field(
        default=5,
        ge=1,
        le=50,
        description=(
            "Cap on hedged calls, in percent of all calls, and on the tokens their losers cost, in percent of all "
            "calls' tokens."
        ),
    )


class Routing(Model):
    policy: Literal["PrefixAffinity", "LeastLoaded", "RoundRobin"] = Field(
        default="PrefixAffinity",
        description=(
            "How calls pick a replica; PrefixAffinity pins each task to one replica so its KV cache stays warm."
        ),
    )
    load_bound_percent: int = Field(
        default=125,
        ge=100,
        le=1000,
        description="Most in-flight calls a replica takes, in percent of its fair share, before tasks spill over.",
    )
    sub_agent_affinity: bool = Field(
        default=True, description="Route sub-agents to their parent's replica to reuse its prefix cache."
    )
    hedging: Hedging = default_obj("Duplicate slow calls to cut the latency tail.", Hedging)
    ejection_consecutive_errors: int = Field(
        default=5, ge=1, le=1000, description="Consecutive errors after which a replica is ejected from routing."
    )
    ejection_seconds: int = Field(
        default=30, ge=1, le=3600, description="How long an ejected replica waits before it is probed back."
    )
    adapter_calls_per_replica: int = Field(
        default=8,
        ge=1,
        le=1024,
        description=(
            "For fleets that call a LoRA adapter (AgentFleet spec.modelAdapter): calls of it one replica takes from a "
            "worker "
            "before the load bound spreads the adapter to its next replica."
        ),
    )


class EndpointPicker(Model):
    service_name: str = Field(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
        description=(
            "Service of the endpoint picker (the Gateway API Inference Extension's EPP, or llm-d's router) in this "
            "namespace."
        ),
    )
    port: int = Field(default=9002, ge=1, le=65535, description="The picker Service's gRPC port (ext-proc).")
    failure_mode: Literal["FailOpen", "FailClose"] = Field(
        default="FailClose",
        description=(
            "What the gateway does when the picker does not answer: FailOpen picks any replica, FailClose refuses."
        ),
    )


class InferencePoolSpec(Model):
    endpoint_picker: EndpointPicker | None = Field(
        default=None,
        description=(
            "The endpoint picker the gateway asks which replica takes a request; unset leaves the pool's picker unset."
        ),
    )
