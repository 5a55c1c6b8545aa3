"""What a gate's step says: status.gate, the EvaluationGate condition and the Event. Pure; fixed
texts and figures only (no answer or task text, which is model and tenant input)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agentfleet_contract.agentfleet import GateStatus

from agentfleet.gate.step import Step

Status = Literal["True", "False", "Unknown"]


@dataclass(frozen=True)
class Report:
    gate: GateStatus
    condition: tuple[Status, str, str]  # EvaluationGate's status, reason, message
    event: tuple[str, str, str] | None  # (Normal|Warning, reason, message), None when nothing happened


def report(step: Step, before: GateStatus | None, now: str) -> Report:
    """status.gate and the condition after ``step``, from the status before it."""
    current = before.current if before else None
    if step.kind == "Adopt":
        gate = GateStatus(phase="Serving", current=step.candidate)
        event = ("Normal", "GateSuperseded", "the change was reverted; the gate stopped") if step.superseded else None
        return Report(gate, ("True", "Serving", "no change waits for the gate"), event)
    if step.kind == "Start":
        gate = GateStatus(phase="Running", current=current, candidate=step.candidate, started_at=now)
        said = "a newer change superseded the running gate; " if step.superseded else ""
        event = ("Normal", "GateStarted", f"{said}evaluating a change that alters answers")
        return Report(gate, ("Unknown", "Running", "evaluating the change against the serving version"), event)
    if step.kind == "Run" and before is not None:
        missing = len(step.missing)
        return Report(before, ("Unknown", "Running", f"{missing} results to go"), None)
    if step.kind == "Finish" and step.decision is not None and before is not None:
        d = step.decision
        if step.overridden == "abort":
            phase: Literal["Promoted", "Held", "Aborted"] = "Aborted"
        else:
            phase = "Promoted" if d.promote else "Held"
        gate = before.model_copy(
            update={
                "phase": phase,
                "current": step.candidate if d.promote else current,
                "reason": d.reason,
                "finished_at": now,
                "figures": d.figures,
            }
        )
        status: Status = "True" if d.promote else "False"
        kind = "Normal" if d.promote else "Warning"
        return Report(gate, (status, d.reason, d.message), (kind, f"Gate{phase}", d.message))
    return Report(before or GateStatus(phase="Serving", current=current), _unchanged(before), None)


def _unchanged(before: GateStatus | None) -> tuple[Status, str, str]:
    if before is None or before.phase in ("Serving", "Promoted"):
        reason = (before.reason if before else None) or "Serving"
        return ("True", reason, "no change waits for the gate")
    if before.phase == "Running":
        return ("Unknown", "Running", "evaluating the change against the serving version")
    return ("False", before.reason or before.phase, f"the change is {before.phase.lower()}; the serving version stays")
