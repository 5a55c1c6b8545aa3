"""Pure decisions of the evaluation gate (spec.rollout.evaluation, docs/evaluation-gate.md): which
spec changes alter answers, the override annotation, and promote or hold from the two versions'
per-task results. No I/O: the AgentFleet controller observes, calls these and applies what they
return."""

from agentfleet.gate.decide import Decision, Spent, decide
from agentfleet.gate.plan import (
    OVERRIDE_ANNOTATION,
    OverrideError,
    answer_hash,
    evaluation_hash,
    override,
    pinned_evaluation,
    promoted_fields,
    serving_spec,
)
from agentfleet.gate.report import Report, report
from agentfleet.gate.step import Step, next_step

__all__ = [
    "OVERRIDE_ANNOTATION",
    "Decision",
    "OverrideError",
    "Report",
    "Spent",
    "Step",
    "answer_hash",
    "evaluation_hash",
    "pinned_evaluation",
    "decide",
    "next_step",
    "override",
    "promoted_fields",
    "report",
    "serving_spec",
]
