"""AgentFleet spec: the worker pods that run agent loops, and task retries."""

from __future__ import annotations

from pydantic import Field

from agentfleet_contract.common import QUANTITY, Model
from agentfleet_contract.rules import Rule


class Workers(Model):
    rules = (
        Rule(
            cel="self.minReplicas <= self.maxReplicas",
            message=(
                "spec.workers.minReplicas must not exceed spec.workers.maxReplicas: raise maxReplicas or lower "
                "minReplicas"
            ),
            check=lambda w: w.min_replicas <= w.max_replicas,
            field_path=".minReplicas",
        ),
    )

    replicas: int = Field(
        default=2,
        ge=0,
        le=10_000,
        description="Worker pods while autoscaling is off; kubectl scale, HPA and KEDA write it.",
    )
    autoscaling: bool = Field(
        default=False, description="Size the workers from task-queue lag and in-flight tasks within min and max."
    )
    min_replicas: int = Field(default=1, ge=0, le=10_000, description="Fewest worker pods the autoscaler keeps.")
    max_replicas: int = Field(default=10, ge=1, le=10_000, description="Most worker pods the autoscaler asks for.")
    sleep_after_idle_seconds: int = Field(
        default=900,
        ge=0,
        le=604_800,
        description=(
            "With autoscaling and minReplicas 0: seconds with no task queued or in flight"
            " before the workers sleep at zero; a queued task wakes them."
        ),
    )
    target_tasks_per_worker: int = Field(
        default=48, ge=1, le=100_000, description="Queued plus in-flight tasks per worker the autoscaler aims for."
    )
    concurrency: int = Field(
        default=64,
        ge=1,
        le=10_000,
        description="Tasks one worker pod runs at once; tasks mostly wait on the model and tools.",
    )
    cpu: str = Field(default="1", max_length=32, pattern=QUANTITY, description="CPU request of each worker pod.")
    memory: str = Field(
        default="1Gi", max_length=32, pattern=QUANTITY, description="Memory request of each worker pod."
    )
    allow_api_server: bool = Field(
        default=True,
        alias="allowAPIServer",
        description="Worker pods may connect to the API server (sticky routing watches EndpointSlices there). "
        "False: they call each ModelReplicaSet through its Service (no sticky routing, failover or hedging), mount "
        "no token, and the operator's apiServerCIDRs join their egress denials. HTTP tools never reach it either way.",
    )


class Retry(Model):
    max_attempts: int = Field(
        default=3, ge=1, le=100, description="Attempts of a task before it moves to the dead-letter stream."
    )
    visibility_timeout_seconds: int = Field(
        default=60, ge=5, le=3600, description="A task whose worker stops heartbeating is reclaimed after this long."
    )
