"""AgentFleet status: workers, queue, cost, the last evaluation run and the gate."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agentfleet_contract.common import Condition, Model, SleepStatus, conditions_field
from agentfleet_contract.gate import GateFigures, Reason


class FailureCauses(Model):
    """Failed tasks of the run by the stage they failed at, the first that explains each (docs/evaluation.md)."""

    budget: int = Field(default=0, ge=0, description="Ended on a step, token, cost, time or context budget.")
    error: int = Field(default=0, ge=0, description="Failed or died: a model call, a worker or the task API.")
    format: int = Field(default=0, ge=0, description="No answer text, or the model's raw decision JSON as the answer.")
    not_retrieved: int = Field(default=0, ge=0, description="No passage of a supporting page among those the task saw.")
    passage_missed: int = Field(
        default=0, ge=0, description="A supporting page was seen, but no seen passage states a fact the answer missed."
    )
    declined: int = Field(default=0, ge=0, description="A seen passage states every missed fact; the answer declined.")
    misread: int = Field(
        default=0, ge=0, description="A seen passage states every missed fact; the answer stated something else."
    )
    invented: int = Field(default=0, ge=0, description="A value asserted where the documents do not answer.")
    passage_as_answer: int = Field(
        default=0, ge=0, description="The answer gives a passage (its number, head line or score) in its place."
    )
    decline_undone: int = Field(
        default=0, ge=0, description="The cascade's first answer declined rightly; the loop's answer asserted a value."
    )


class EvaluationSummary(Model):
    """The last `agentfleet eval` run against this fleet, written by the harness under its own field manager."""

    task_set: str = Field(
        max_length=512, description="Task set evaluated: file name and part (for example postgres-manual.yaml#heldout)."
    )
    finished_at: str = Field(max_length=64, description="When the run ended (RFC 3339, UTC).")
    tasks: int = Field(ge=0, description="Tasks submitted through the task API.")
    success: float = Field(
        ge=0,
        le=1,
        description=(
            "Share of tasks whose answer states every expected fact (or declines, for questions the documents do not "
            "answer)."
        ),
    )
    grounded: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description=(
            "Share of answerable tasks whose citations all name passages the task retrieved and contain the stated "
            "facts."
        ),
    )
    recall: float | None = Field(
        default=None, ge=0, le=1, description="Mean recall@k of the supporting documents among the retrieved passages."
    )
    recall_k: int | None = Field(default=None, ge=1, description="The k of recall.")
    p95_seconds: float | None = Field(default=None, ge=0, description="95th percentile task latency, submit to finish.")
    cost_per_task: str | None = Field(
        default=None, max_length=32, description="Mean cost of a task and its sub-agents in the pricing currency."
    )
    configuration: str | None = Field(
        default=None, max_length=512, description="Settings the harness overrode for this run, if any."
    )
    failure_causes: FailureCauses | None = Field(
        default=None, description="Failed tasks by the stage they failed at: where to look first."
    )


class GateCanary(Model):
    """A ModelReplicaSet whose changed model or adapters the gate's candidate ran against, on its canary replica."""

    model_replica_set: str = Field(max_length=253, description="The ModelReplicaSet's name.")
    hash: str = Field(max_length=64, description="Hash of its model and adapters the candidate used (its canary).")


class GateJudge(Model):
    """What judged a change: the promoted version's rule and task set, and the operator's scorer."""

    evaluation: str | None = Field(
        default=None, max_length=64, description="Hash of the spec.rollout.evaluation that judged (the promoted one)."
    )
    task_set_sha256: str | None = Field(
        default=None, max_length=64, description="SHA-256 of the task set file the evaluation Job scored."
    )
    scorer_sha256: str | None = Field(
        default=None, max_length=64, description="SHA-256 of the scorer's sources in the evaluation Job's image."
    )
    scorer_image: str | None = Field(
        default=None, max_length=512, description="The evaluation Job's image: the operator's runtime image."
    )


class GateStatus(Model):
    """The evaluation gate of the latest change (spec.rollout.evaluation)."""

    phase: Literal["Serving", "Running", "Promoted", "Held", "Aborted"] = Field(
        description="Serving (no change to gate), Running, or how the gate ended: Promoted, Held, or Aborted by the "
        "override annotation."
    )
    current: str | None = Field(
        default=None, max_length=64, description="Hash of the answer-changing spec the serving workers run."
    )
    candidate: str | None = Field(
        default=None, max_length=64, description="Hash of the answer-changing spec the candidate runs."
    )
    reason: Reason | None = Field(default=None, description="Why it was promoted or held.")
    started_at: str | None = Field(default=None, max_length=64, description="When the gate began (RFC 3339, UTC).")
    finished_at: str | None = Field(default=None, max_length=64, description="When it decided (RFC 3339, UTC).")
    figures: GateFigures | None = Field(default=None, description="What the gate measured.")
    canaries: list[GateCanary] = Field(
        default_factory=list,
        max_length=4,
        description="ModelReplicaSets whose canary replica the candidate called; their rollout waits for this gate.",
    )
    judge: GateJudge | None = Field(
        default=None, description="What judged the change: the promoted version's rule and task set, and the scorer."
    )
    rejected_results: int | None = Field(
        default=None,
        ge=0,
        description="Values in the results ConfigMap that did not verify under the gate's key: not counted.",
    )


# How far the fleet's Redis user reaches beyond the fleet's own keys (af:<namespace>/<fleet>:*).
RedisReach = Literal["Server", "Database", "OwnKeys"]


class RedisIdentity(Model):
    """The external Redis the fleet's pass reached, as the server describes itself (docs/security.md)."""

    server_id: str = Field(
        max_length=64, description="SHA-256 (first 16 hex digits) of the server's INFO run_id: equal for one server."
    )
    db: int = Field(ge=0, description="The logical database the fleet's URL selects.")
    reach: RedisReach = Field(
        description="What the fleet's Redis user may touch: Server (every key of every database), Database (every "
        "key of its database: SELECT is refused) or OwnKeys (only keys under af:<namespace>/<fleet>:)."
    )


class AgentFleetStatus(Model):
    observed_generation: int | None = Field(default=None, description="metadata.generation last acted upon.")
    workers: int = Field(default=0, description="Worker pods that exist.")
    ready_workers: int = Field(default=0, description="Worker pods ready to take tasks.")
    desired_workers: int | None = Field(default=None, description="Worker pods the operator aims for.")
    selector: str | None = Field(
        default=None, max_length=4096, description="Label selector of the worker pods, for the scale subresource."
    )
    queue_depth: int | None = Field(default=None, description="Tasks waiting in the stream.")
    in_flight_tasks: int | None = Field(default=None, description="Tasks being worked on.")
    awaiting_approval: int | None = Field(
        default=None, description="Tasks waiting for a person to approve a tool call (kubectl agentfleet approvals)."
    )
    tasks_per_hour: int | None = Field(default=None, description="Tasks finished in the last hour.")
    task_p95_seconds: float | None = Field(
        default=None, description="95th percentile task duration over the last hour."
    )
    cost_per_task: str | None = Field(
        default=None, max_length=32, description="Mean cost of a finished task in the pricing currency."
    )
    task_api_endpoint: str | None = Field(default=None, max_length=512, description="In-cluster URL of the task API.")
    a2a_endpoint: str | None = Field(
        default=None,
        alias="a2aEndpoint",  # to_camel would write a2AEndpoint
        max_length=2048,
        description="Where A2A callers reach the fleet (spec.a2a.url, else the task API's in-cluster URL): its agent "
        "card at <url>/.well-known/agent-card.json, JSON-RPC at <url>/a2a. Unset without spec.a2a.",
    )
    evaluation: EvaluationSummary | None = Field(
        default=None, description="Summary of the last evaluation run (agentfleet eval); the operator never writes it."
    )
    sleep: SleepStatus | None = Field(
        default=None, description="Scale to zero (workers.minReplicas 0): awake, sleeping at zero workers, or waking."
    )
    gate: GateStatus | None = Field(
        default=None, description="The evaluation gate of the latest change that alters answers (spec.rollout)."
    )
    redis: RedisIdentity | None = Field(
        default=None,
        description="The external Redis's identity, compared with other fleets' to warn of a shared one (RedisShared).",
    )
    conditions: list[Condition] = conditions_field()
