"""What the gate says (status.gate, EvaluationGate, the Event) and what the serving workers run
while a change waits for its gate (issue 58)."""

from __future__ import annotations

from agentfleet_contract.agentfleet import AgentFleetSpec, GateStatus
from agentfleet_contract.gate import GateFigures

from agentfleet.gate import Decision, Step, answer_hash, promoted_fields, report, serving_spec

NOW = "2026-11-26T12:30:00Z"
RUNNING = GateStatus(phase="Running", current="old", candidate="new", started_at="2026-11-26T12:00:00Z")


def test_a_started_gate_is_running_and_says_so() -> None:
    r = report(Step("Start", candidate="new"), GateStatus(phase="Serving", current="old"), NOW)
    assert (r.gate.phase, r.gate.current, r.gate.candidate, r.gate.started_at) == ("Running", "old", "new", NOW)
    assert r.condition[:2] == ("Unknown", "Running") and r.event[1] == "GateStarted"
    again = report(Step("Start", candidate="newer", superseded="new"), RUNNING, NOW)
    assert again.event[2].startswith("a newer change superseded") and again.gate.candidate == "newer"


def test_a_held_change_keeps_the_serving_version_with_figures_and_a_warning() -> None:
    figures = GateFigures(tasks=20, tokens=51_000)
    d = Decision(False, "SuccessDropped", "task success candidate minus current -40pp", figures)
    r = report(Step("Finish", candidate="new", decision=d), RUNNING, NOW)
    assert (r.gate.phase, r.gate.current, r.gate.reason, r.gate.figures) == ("Held", "old", "SuccessDropped", figures)
    assert r.condition == ("False", "SuccessDropped", d.message)
    assert r.event == ("Warning", "GateHeld", d.message)
    # later passes say the same without a new Event
    later = report(Step("Idle"), r.gate, NOW)
    assert later.event is None and later.condition[:2] == ("False", "SuccessDropped")


def test_a_promoted_change_serves_and_an_aborted_one_does_not() -> None:
    ok = Decision(True, "Passed", "task success +0pp", GateFigures(tasks=30))
    r = report(Step("Finish", candidate="new", decision=ok), RUNNING, NOW)
    assert (r.gate.phase, r.gate.current, r.condition[0], r.event[:2]) == (
        "Promoted",
        "new",
        "True",
        ("Normal", "GatePromoted"),
    )
    abort = Decision(False, "Overridden", "aborted by the agentfleet.io/gate=abort annotation", GateFigures(tasks=0))
    r = report(Step("Finish", candidate="new", decision=abort, overridden="abort"), RUNNING, NOW)
    assert (r.gate.phase, r.gate.current, r.condition[1]) == ("Aborted", "old", "Overridden")


BASE = {"modelRef": {"name": "m"}, "redis": {"url": "redis://r:6379"}, "systemPrompt": {"inline": "Cite."}}


def test_the_serving_workers_keep_the_promoted_answers_and_take_the_rest_at_once() -> None:
    promoted = promoted_fields(AgentFleetSpec.model_validate(BASE))
    changed = AgentFleetSpec.model_validate(
        {**BASE, "systemPrompt": {"inline": "Never cite."}, "workers": {"replicas": 5}}
    )
    serving = serving_spec(changed, promoted)
    assert serving.system_prompt.inline == "Cite." and serving.workers.replicas == 5
    assert answer_hash(serving) == answer_hash(AgentFleetSpec.model_validate(BASE))
    assert serving_spec(changed, None) is changed
