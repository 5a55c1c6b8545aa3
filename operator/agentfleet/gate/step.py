"""The gate's next step, from what the controller observed. Pure: the controller renders, deletes
and writes status as the step says.

The state lives in the AgentFleet's status (``status.gate``: the hash the serving workers run, the
candidate's, the phase, when it started) and in the results the evaluation Job wrote (one
ConfigMap per candidate), so an operator restart or a killed Job picks up where it stopped:
finished (version, task) results are never run again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from agentfleet_contract.agentfleet import GateStatus, RolloutEvaluation
from agentfleet_contract.gate import GateFigures, GateTaskResult, Version, pending

from agentfleet.gate.decide import Decision, Spent, decide
from agentfleet.gate.plan import OVERRIDE_ANNOTATION

Kind = Literal["Adopt", "Start", "Run", "Finish", "Idle"]


@dataclass(frozen=True)
class Step:
    kind: Kind
    # Adopt: the serving workers take the spec as it is (no gate configured, or nothing to compare
    # with yet). Start: render the candidate and the Job for ``candidate`` (deleting a superseded
    # one's). Run: the Job runs ``missing``. Finish: promote or hold by ``decision``. Idle: nothing.
    candidate: str | None = None
    superseded: str | None = None  # a running gate's candidate that a newer change replaces
    missing: list[tuple[Version, str]] = field(default_factory=list)
    decision: Decision | None = None
    overridden: Literal["promote", "abort"] | None = None


def _started(gate: GateStatus) -> datetime | None:
    return datetime.fromisoformat(gate.started_at.replace("Z", "+00:00")) if gate.started_at else None


def next_step(
    evaluation: RolloutEvaluation | None,
    wanted: str,
    gate: GateStatus | None,
    *,
    sampled: list[str],
    results: list[GateTaskResult],
    now: datetime,
    override: Literal["promote", "abort"] | None = None,
) -> Step:
    """What to do about the change ``wanted`` (answer_hash of the spec) given the gate's status."""
    current = gate.current if gate else None
    if evaluation is None or current is None:
        return Step("Adopt", candidate=wanted) if current != wanted else Step("Idle")
    if wanted == current:
        # The spec went back to what serves: a running gate has nothing left to decide.
        if gate is not None and gate.phase == "Running":
            return Step("Adopt", candidate=wanted, superseded=gate.candidate)
        if gate is not None and gate.phase in ("Held", "Aborted"):
            return Step("Adopt", candidate=wanted)  # the held change was taken back: serving, not held
        return Step("Idle")
    if gate is None or gate.candidate != wanted:
        running = gate is not None and gate.phase == "Running"
        return Step("Start", candidate=wanted, superseded=gate.candidate if running and gate else None)
    if gate.phase in ("Promoted", "Held", "Aborted"):
        if override == "promote" and gate.phase != "Promoted":
            return _overridden(wanted, "promote", results)
        return Step("Idle")
    if override is not None:
        return _overridden(wanted, override, results)
    started = _started(gate) or now
    spent = Spent(tokens=sum(r.tokens for r in results), wall_seconds=max(0.0, (now - started).total_seconds()))
    missing = pending(sampled, results)
    budget = evaluation.budget
    if missing and spent.tokens <= budget.max_tokens and spent.wall_seconds <= budget.timeout_seconds:
        return Step("Run", candidate=wanted, missing=missing)
    return Step("Finish", candidate=wanted, decision=decide(evaluation.rule, budget, results, [], spent))


def _overridden(candidate: str, how: Literal["promote", "abort"], results: list[GateTaskResult]) -> Step:
    figures = GateFigures(tasks=len({r.task_id for r in results}), tokens=sum(r.tokens for r in results))
    said = "promoted" if how == "promote" else "aborted"
    decision = Decision(
        how == "promote", "Overridden", f"{said} by the {OVERRIDE_ANNOTATION}={how} annotation", figures
    )
    return Step("Finish", candidate=candidate, decision=decision, overridden=how)
