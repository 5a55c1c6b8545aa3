"""The evaluation gate's records: one task's result for one version (what the evaluation Job
writes, the operator reads) and the figures a decision reports in status. docs/evaluation-gate.md."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from agentfleet_contract.common import DECIMAL, Model

Version = Literal["current", "candidate"]
Reason = Literal[
    "Passed",
    "SuccessDropped",
    "GroundingDropped",
    "DeclinesDropped",
    "CostRose",
    "BudgetExhausted",
    "NoTasks",
    "Overridden",
]


class GateTaskResult(Model):
    """One task of the gate's sample answered by one version and scored by agentfleet eval's scorer."""

    task_id: str = Field(max_length=253, description="The task's id in its task set.")
    version: Version = Field(description="Which version answered: current or candidate.")
    success: bool = Field(description="The answer states every expected fact (or declines an unanswerable question).")
    grounded: bool | None = Field(
        default=None, description="Citations name retrieved passages stating the facts; unset for unanswerable ones."
    )
    unanswerable: bool = Field(default=False, description="The question expects a decline.")
    tokens: int = Field(default=0, ge=0, description="Tokens of the task and its sub-agents.")
    cost: str = Field(
        default="0", max_length=32, pattern=DECIMAL, description="Cost of the task in the pricing currency."
    )


class GateMeasure(Model):
    """A measure compared task by task: candidate minus current on the tasks both versions scored."""

    tasks: int = Field(ge=0, description="Tasks both versions scored on this measure.")
    current: float = Field(ge=0, le=1, description="The current version's rate.")
    candidate: float = Field(ge=0, le=1, description="The candidate's rate.")
    delta: float = Field(ge=-1, le=1, description="Candidate minus current.")
    low: float = Field(ge=-1, le=1, description="Low end of the paired 95% interval of the delta (Newcombe).")
    high: float = Field(ge=-1, le=1, description="High end of that interval.")
    p: float = Field(ge=0, le=1, description="Exact McNemar p-value of no difference.")
    max_drop_points: int | None = Field(default=None, description="The rule's limit; unset when not checked.")
    passed: bool = Field(description="The interval's low end is at or above minus the limit (or not checked).")


class GateFigures(Model):
    """What a gate measured, as status and the Event report it."""

    tasks: int = Field(ge=0, description="Tasks of the sample both versions finished.")
    success: GateMeasure | None = Field(default=None, description="Task success.")
    grounded: GateMeasure | None = Field(
        default=None, description="Answerable tasks whose answers are grounded in their citations."
    )
    declines: GateMeasure | None = Field(default=None, description="Unanswerable questions declined.")
    cost_basis: Literal["cost", "tokens"] = Field(
        default="cost", description="What the cost ratio compares: cost, or tokens when the fleet has no prices."
    )
    current_per_task: float = Field(default=0, ge=0, description="The current version's mean cost (or tokens) a task.")
    candidate_per_task: float = Field(default=0, ge=0, description="The candidate's mean cost (or tokens) a task.")
    cost_ratio: float | None = Field(default=None, ge=0, description="Candidate per task over current per task.")
    tokens: int = Field(default=0, ge=0, description="Tokens both versions spent on the gate.")
    wall_seconds: float = Field(default=0, ge=0, description="Wall time of the gate so far.")
