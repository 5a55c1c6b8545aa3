"""The gate's next step from observed state (issue 58): the first version is adopted, a change
starts a gate, a second change supersedes it, a restart resumes with only the missing results, the
budget and the override end it, a held change stays held."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from agentfleet_contract.agentfleet import GateStatus, RolloutEvaluation
from agentfleet_contract.gate import GateTaskResult

from agentfleet.gate import next_step

EVAL = RolloutEvaluation.model_validate({"taskSet": {"shipped": "postgres-manual"}})
T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TASKS = ["t0", "t1", "t2"]


def running(candidate: str = "new", **kw) -> GateStatus:
    return GateStatus(phase="Running", current="old", candidate=candidate, started_at="2026-11-26T12:00:00Z", **kw)


def done(task: str, version: str, ok: bool = True, tokens: int = 100) -> GateTaskResult:
    return GateTaskResult(task_id=task, version=version, success=ok, grounded=ok, tokens=tokens)


def step(gate, wanted="new", results=(), now=T0, evaluation=EVAL, override=None):
    return next_step(evaluation, wanted, gate, sampled=TASKS, results=list(results), now=now, override=override)


def test_the_first_version_and_an_ungated_fleet_are_adopted() -> None:
    assert step(None).kind == "Adopt" and step(None).candidate == "new"
    assert step(GateStatus(phase="Serving", current="old"), evaluation=None).kind == "Adopt"
    assert step(GateStatus(phase="Serving", current="new")).kind == "Idle"


def test_a_change_starts_a_gate_and_a_second_one_supersedes_it() -> None:
    s = step(GateStatus(phase="Serving", current="old"))
    assert (s.kind, s.candidate, s.superseded) == ("Start", "new", None)
    s = step(running("new"), wanted="newer")
    assert (s.kind, s.candidate, s.superseded) == ("Start", "newer", "new")
    back = step(running("new"), wanted="old")  # the change reverted: nothing to gate, the Job goes
    assert (back.kind, back.superseded) == ("Adopt", "new")
    # A held change taken back: the fleet serves what it wants again, no longer held.
    held = GateStatus(phase="Held", current="old", candidate="new", reason="SuccessDropped")
    assert (step(held, wanted="old").kind, step(held, wanted="new").kind) == ("Adopt", "Idle")


def test_a_restarted_gate_runs_only_what_is_missing() -> None:
    results = [done("t0", "current"), done("t0", "candidate"), done("t1", "current")]
    s = step(running(), results=results, now=T0 + timedelta(minutes=5))
    assert (s.kind, s.missing) == ("Run", [("candidate", "t1"), ("current", "t2"), ("candidate", "t2")])


def test_a_finished_gate_decides() -> None:
    sample = [f"q{i}" for i in range(30)]

    def finish(results):
        return next_step(EVAL, "new", running(), sampled=sample, results=results, now=T0)

    s = finish([done(t, v) for t in sample for v in ("current", "candidate")])
    assert (s.kind, s.decision.reason, s.decision.promote) == ("Finish", "Passed", True)
    s = finish([done(t, "current") for t in sample] + [done(t, "candidate", ok=t > "q2") for t in sample])
    assert (s.kind, s.decision.reason, s.decision.promote) == ("Finish", "SuccessDropped", False)
    # Three tasks can rule out no drop of 15 points: the gate holds what it cannot tell apart.
    assert step(running(), results=[done(t, v) for t in TASKS for v in ("current", "candidate")]).decision.reason == (
        "SuccessDropped"
    )


def test_the_budget_ends_a_gate_with_tasks_missing() -> None:
    partial = [done("t0", "current"), done("t0", "candidate")]
    late = step(running(), results=partial, now=T0 + timedelta(seconds=EVAL.budget.timeout_seconds + 1))
    assert (late.kind, late.decision.reason, late.decision.promote) == ("Finish", "BudgetExhausted", False)
    dear = [done("t0", "current", tokens=EVAL.budget.max_tokens), done("t0", "candidate", tokens=1)]
    assert step(running(), results=dear).decision.reason == "BudgetExhausted"
    assert step(running(), results=partial, now=T0 + timedelta(seconds=EVAL.budget.timeout_seconds)).kind == "Run"


def test_the_override_promotes_or_aborts() -> None:
    s = step(running(), override="abort")
    assert (s.kind, s.overridden, s.decision.promote, s.decision.reason) == ("Finish", "abort", False, "Overridden")
    held = GateStatus(phase="Held", current="old", candidate="new", reason="SuccessDropped")
    assert step(held).kind == "Idle"  # a held change stays held: no gate restarts every pass
    s = step(held, override="promote")
    assert (s.kind, s.decision.promote, s.decision.message) == (
        "Finish",
        True,
        "promoted by the agentfleet.io/gate=promote annotation",
    )
    assert step(held, override="abort").kind == "Idle"
