"""The evaluation gate's decision (issue 58): HOLD on a broken change, PROMOTE on a neutral one,
with the paired figures of agentfleet eval; the rule's other measures, the budget, what starts a
gate and what a restarted one still runs."""

from __future__ import annotations

import pytest
from agentfleet_contract.agentfleet import AgentFleetSpec, GateBudget, GateRule, RolloutEvaluation
from agentfleet_contract.gate import GateTaskResult
from agentfleet_contract.paired import newcombe

from agentfleet.gate import OVERRIDE_ANNOTATION, OverrideError, Spent, answer_hash, decide, override

RULE = GateRule()
BUDGET = GateBudget()


def results(version: str, outcomes: list[bool], **kw) -> list[GateTaskResult]:
    return [
        GateTaskResult(task_id=f"t{i:02d}", version=version, success=ok, grounded=kw.get("grounded", ok), **{
            k: v for k, v in kw.items() if k != "grounded"
        })
        for i, ok in enumerate(outcomes)
    ]  # fmt: skip


def run(cur: list[bool], cand: list[bool], rule: GateRule = RULE, spent: Spent | None = None, **kw):
    return decide(rule, BUDGET, results("current", cur, **kw), results("candidate", cand, **kw), spent or Spent())


def test_a_broken_change_is_held_with_its_figures() -> None:
    # Retrieval pointed at an empty index: 8 of the 12 questions the current version answers go wrong.
    cur = [True] * 12 + [False] * 8
    cand = [True] * 4 + [False] * 16
    d = run(cur, cand)
    assert (d.promote, d.reason) == (False, "SuccessDropped")
    s = d.figures.success
    assert (s.tasks, s.current, s.candidate, s.delta) == (20, 0.6, 0.2, pytest.approx(-0.4))
    assert (s.low, s.high) == pytest.approx(newcombe(4, 8, 0, 8))
    assert s.low < -0.15 and not s.passed and s.p == pytest.approx(2 / 2**8)
    assert d.message.startswith("task success candidate minus current -40pp, 95% interval [")


def test_a_neutral_change_is_promoted() -> None:
    # 40 tasks, two answers swap each way (a model's noise), the rest agree.
    cur = [True] * 28 + [True, True, False, False] + [False] * 8
    cand = [True] * 28 + [False, False, True, True] + [False] * 8
    d = run(cur, cand)
    assert (d.promote, d.reason) == (True, "Passed"), d.message
    assert d.figures.success.delta == 0 and -0.15 < d.figures.success.low < -0.1
    assert d.figures.cost_ratio is None and d.figures.cost_basis == "tokens"


def test_the_rule_is_the_interval_low_end_not_the_delta() -> None:
    # A delta of 0 on 20 tasks with a few swaps still leaves a drop of 18 points possible: a gate of
    # 15 points holds it, one of 20 promotes it.
    cur = [True] * 14 + [True, False] + [False] * 4
    cand = [True] * 14 + [False, True] + [False] * 4
    assert run(cur, cand).reason == "SuccessDropped"
    assert run(cur, cand, rule=GateRule(max_success_drop_points=20, max_grounded_drop_points=20)).promote
    assert newcombe(14, 1, 1, 4)[0] == pytest.approx(-0.1751, abs=1e-4)
    for points, promote in ((17, False), (18, True)):
        assert (
            run(cur, cand, rule=GateRule(max_success_drop_points=points, max_grounded_drop_points=None)).promote
            is promote
        )


def test_grounding_and_declines_are_checked_likewise() -> None:
    same = [True] * 30
    ungrounded = results("candidate", same, grounded=False)
    d = decide(RULE, BUDGET, results("current", same), ungrounded)
    assert (d.promote, d.reason) == (False, "GroundingDropped") and d.figures.grounded.candidate == 0
    assert decide(GateRule(max_grounded_drop_points=None), BUDGET, results("current", same), ungrounded).promote
    # Unanswerable questions: the candidate stops declining 8 of 10.
    cur = results("current", [True] * 10, unanswerable=True, grounded=None)
    cand = results("candidate", [True] * 2 + [False] * 8, unanswerable=True, grounded=None)
    rule = GateRule(max_success_drop_points=100, max_decline_drop_points=15)
    d = decide(rule, BUDGET, cur, cand)
    assert (d.reason, d.figures.declines.tasks, d.figures.grounded) == ("DeclinesDropped", 10, None)
    # Beside 20 answerable tasks (3 of them without a grounding verdict in the candidate's run), each
    # measure counts its own tasks.
    answerable = [
        GateTaskResult(
            task_id=f"a{i:02d}", version=v, success=True, grounded=None if v == "candidate" and i < 3 else True
        )
        for i in range(20)
        for v in ("current", "candidate")
    ]
    mixed = decide(rule, BUDGET, [*cur, *answerable], cand)
    assert (mixed.figures.tasks, mixed.figures.declines.tasks, mixed.figures.grounded.tasks) == (30, 10, 17)
    assert decide(GateRule(max_success_drop_points=100), BUDGET, cur, cand).promote  # declines unchecked by default


def test_cost_per_task_at_most_the_ratio() -> None:
    same = [True] * 30
    dear = decide(RULE, BUDGET, results("current", same, cost="0.0001"), results("candidate", same, cost="0.0002"))
    assert (dear.reason, dear.figures.cost_basis, dear.figures.cost_ratio) == ("CostRose", "cost", pytest.approx(2))
    assert dear.message == "cost per task rose 2.00x; the rule allows 1.5x"
    ok = decide(RULE, BUDGET, results("current", same, cost="0.0001"), results("candidate", same, cost="0.00015"))
    assert ok.promote and ok.figures.cost_ratio == pytest.approx(1.5)
    tokens = decide(RULE, BUDGET, results("current", same, tokens=1000), results("candidate", same, tokens=3000))
    assert (tokens.reason, tokens.figures.cost_basis) == ("CostRose", "tokens")
    assert decide(
        GateRule(max_cost_ratio=None), BUDGET, results("current", same, tokens=1), results("candidate", same, tokens=9)
    ).promote


def test_a_spent_budget_holds_whatever_the_results() -> None:
    same = [True] * 30
    d = run(same, same, spent=Spent(tokens=BUDGET.max_tokens + 1))
    assert (d.promote, d.reason, d.message) == (
        False,
        "BudgetExhausted",
        "the gate's tokens budget ran out after 30 tasks",
    )
    assert run(same, same, spent=Spent(wall_seconds=BUDGET.timeout_seconds + 1)).reason == "BudgetExhausted"
    assert run(same, same, spent=Spent(tokens=BUDGET.max_tokens, wall_seconds=BUDGET.timeout_seconds)).promote


def test_only_tasks_both_versions_finished_are_compared() -> None:
    cur = results("current", [True] * 30)
    cand = results("candidate", [True] * 20)  # the candidate finished 20 so far
    d = decide(RULE, BUDGET, cur, cand)
    assert d.figures.tasks == 20 and d.figures.success.tasks == 20
    assert decide(RULE, BUDGET, cur, []).reason == "NoTasks"


def test_the_gate_and_agentfleet_eval_agree_on_the_same_outcomes() -> None:
    from agentfleet_eval.scoring import Outcome, TaskScore
    from agentfleet_eval.taskset import EvalTask

    from agentfleet_client.evaluation.paired import paired

    cur = [True] * 9 + [True] * 7 + [False] * 2 + [False] * 7
    cand = [True] * 9 + [False] * 7 + [True] * 2 + [False] * 7

    def scores(outcomes):
        return [
            TaskScore(EvalTask(id=f"t{i:02d}", question="q", kind="k", part="dev", facts=(), supporting=()),
                      Outcome(), ok, None, None, "")
            for i, ok in enumerate(outcomes)
        ]  # fmt: skip

    ev = paired(scores(cur), scores(cand))
    g = run(cur, cand).figures.success
    assert (g.tasks, g.delta, g.low, g.high, g.p) == (ev.n, ev.delta, ev.low, ev.high, ev.p)


SPEC = {"modelRef": {"name": "m"}, "redis": {"url": "redis://r:6379"}, "systemPrompt": {"inline": "Cite."}}


@pytest.mark.parametrize(
    ("change", "alters"),
    [
        ({"systemPrompt": {"inline": "Never cite."}}, True),
        ({"modelAdapter": "sql-lora"}, True),
        ({"tools": [{"name": "kb", "type": "Retrieval"}], "vectorIndexRef": {"name": "empty"}}, True),
        ({"decisions": {"repairAttempts": 0}}, True),
        ({"image": "ghcr.io/agentfleet/agentfleet:0.2.0"}, True),
        ({"workers": {"replicas": 7}}, False),
        ({"pricing": {"inputPerMillionTokens": "0.5"}}, False),
        ({"tracing": {"endpoint": "http://otel:4318"}}, False),
    ],
)
def test_what_starts_a_gate(change: dict, alters: bool) -> None:
    before = answer_hash(AgentFleetSpec.model_validate(SPEC))
    assert (answer_hash(AgentFleetSpec.model_validate({**SPEC, **change})) != before) is alters


def test_what_a_reference_points_at_starts_a_gate_too() -> None:
    spec = AgentFleetSpec.model_validate(SPEC)
    assert answer_hash(spec, {"model": "qwen-1.5b"}) != answer_hash(spec, {"model": "qwen-0.5b"})


def test_the_override_annotation() -> None:
    assert override(None) is None and override({"x": "y"}) is None
    assert (
        override({OVERRIDE_ANNOTATION: "Promote"}) == "promote" and override({OVERRIDE_ANNOTATION: "abort"}) == "abort"
    )
    with pytest.raises(OverrideError, match="agentfleet.io/gate must be promote or abort"):
        override({OVERRIDE_ANNOTATION: "yes"})


def test_the_api_refuses_a_task_set_with_both_or_neither_source() -> None:
    ok = RolloutEvaluation.model_validate({"taskSet": {"shipped": "postgres-manual"}})
    assert (ok.part, ok.sample, ok.rule.max_success_drop_points, ok.rule.max_cost_ratio) == ("heldout", 30, 15, "1.5")
    for bad in ({}, {"shipped": "python-library", "configMapRef": {"name": "t", "key": "tasks.yaml"}}):
        with pytest.raises(ValueError, match="needs exactly one of shipped"):
            RolloutEvaluation.model_validate({"taskSet": bad})
    with pytest.raises(ValueError, match="maxCostRatio must be a decimal string"):
        RolloutEvaluation.model_validate({"taskSet": {"shipped": "postgres-manual"}, "rule": {"maxCostRatio": "x2"}})
    # On the AgentFleet spec now that the controller runs the gate; unset, changes roll out at once.
    spec = AgentFleetSpec.model_validate(
        {**SPEC, "rollout": {"evaluation": {"taskSet": {"shipped": "python-library"}}}}
    )
    assert spec.evaluation is not None and spec.evaluation.task_set.shipped == "python-library"
    assert AgentFleetSpec.model_validate(SPEC).evaluation is None


def test_the_crd_adds_nothing_to_a_fleet_written_before_the_gate() -> None:
    """No schema default on spec.rollout: the API server would otherwise add rollout: {} to every
    existing AgentFleet, which an operator of the version before (strict models) refuses as an
    invalid spec while a chart upgrade has replaced the CRD but not yet the operator."""
    from pathlib import Path

    import yaml

    crd = yaml.safe_load((Path(__file__).resolve().parents[3] / "crds" / "agentfleet.io_agentfleets.yaml").read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert "rollout" in spec and "default" not in spec["rollout"]
