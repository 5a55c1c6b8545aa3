"""AgentFleet spec: the evaluation gate a change passes before it is promoted (spec.rollout.evaluation).

docs/evaluation-gate.md describes it; the operator decides it in agentfleet.gate (and the AgentFleet
pass's gating.py), not in agentfleet.replica_rollout, which rolls a ModelReplicaSet's replicas."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agentfleet_contract.agentfleet.budgets import _decimal
from agentfleet_contract.common import ConfigMapKeyRef, Model, default_obj
from agentfleet_contract.rules import Rule

# The task sets that ship with agentfleet (e2e/eval/NAME-tasks.yaml), runnable by name.
SHIPPED_TASK_SETS = ("postgres-manual", "python-library")
GATE = "spec.rollout.evaluation"


class GateTaskSet(Model):
    rules = (
        Rule(
            cel="has(self.shipped) != has(self.configMapRef)",
            message=f"{GATE}.taskSet needs exactly one of shipped (a task set by name) or configMapRef",
            check=lambda t: (t.shipped is None) != (t.config_map_ref is None),
        ),
    )

    shipped: Literal["postgres-manual", "python-library"] | None = Field(
        default=None, description="A task set that ships with agentfleet, by name."
    )
    config_map_ref: ConfigMapKeyRef | None = Field(
        default=None, description="ConfigMap key holding a task set in agentfleet eval's format (YAML or JSONL)."
    )


class GateRule(Model):
    rules = (_decimal("max_cost_ratio", f"{GATE}.rule.maxCostRatio", "1.5"),)

    max_success_drop_points: int = Field(
        default=15,
        ge=0,
        le=100,
        description="Hold when the paired 95% interval of candidate minus current task success reaches below minus "
        "this many points.",
    )
    max_grounded_drop_points: int | None = Field(
        default=15,
        ge=0,
        le=100,
        description="The same for answerable tasks whose answers are grounded in their citations; unset: not checked.",
    )
    max_decline_drop_points: int | None = Field(
        default=None,
        ge=0,
        le=100,
        description="The same for unanswerable questions declined; unset: declines are not checked.",
    )
    max_cost_ratio: str | None = Field(
        default="1.5",
        max_length=32,
        description="Hold when the candidate's cost per task exceeds this multiple of the current version's (tokens "
        "per task when the fleet has no prices); unset: cost is not checked.",
    )


class GateBudget(Model):
    timeout_seconds: int = Field(
        default=3600, ge=60, le=86_400, description="Wall time of one gate; an exhausted budget holds the change."
    )
    max_tokens: int = Field(
        default=2_000_000,
        ge=1_000,
        le=10_000_000_000,
        description="Tokens both versions may spend on one gate together; an exhausted budget holds the change.",
    )


class RolloutEvaluation(Model):
    task_set: GateTaskSet = Field(description="The questions both versions answer, scored as agentfleet eval scores.")
    part: Literal["dev", "heldout", "all"] = Field(
        default="heldout", description="Part of the task set to run: dev, heldout or all."
    )
    sample: int = Field(
        default=30,
        ge=0,
        le=10_000,
        description="Tasks to run, a stratified sample by part and kind (the same for the same seed); 0 runs all.",
    )
    seed: int = Field(default=0, ge=0, le=2_147_483_647, description="Seed of the sample.")
    rule: GateRule = default_obj("When a change is promoted: every checked measure passes.", GateRule)
    budget: GateBudget = default_obj("Time and tokens one gate may spend.", GateBudget)
    concurrency: int = Field(
        default=2, ge=1, le=64, description="Tasks in flight at once, per version, while the gate runs."
    )
    side_effects: Literal["Skip", "DryRunHeader"] = Field(
        default="Skip",
        description="Side-effect tools in gate tasks: Skip (never called), or DryRunHeader (HTTP tools called with "
        "X-Agentfleet-Dry-Run: true).",
    )


class Rollout(Model):
    evaluation: RolloutEvaluation | None = Field(
        default=None,
        description="Run a task set against the current version and a change that alters answers, and promote the "
        "change only if it passes the rule; unset rolls changes out at once.",
    )
