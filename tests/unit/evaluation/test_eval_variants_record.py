"""--compare variants of a runtime configuration, the fleet-status record, the judge's verdict."""

from __future__ import annotations

import datetime as dt

import pytest
from agentfleet_contract.agentfleet import AgentFleetStatus

from agentfleet_client.evaluation import report
from agentfleet_client.evaluation.record import FIELD_MANAGER, evaluation_summary, status_patch
from agentfleet_client.evaluation.runner import outcome_of, parse_verdict
from agentfleet_client.evaluation.variants import Variant, VariantError, apply_variant, parse_compare, plan_variants

DOC = {
    "fleet": "support",
    "budgets": {"maxSteps": 24},
    "tools": [
        {"name": "search_docs", "type": "Retrieval", "retrieval": {"topK": 5}},
        {"name": "delegate", "type": "Spawn"},
    ],
}


def test_compare_values_become_variants_of_the_runtime_config() -> None:
    top = parse_compare("retrieval.topK=3,8")
    assert [v.label for v in top] == ["retrieval.topK=3", "retrieval.topK=8"] and [v.value for v in top] == [3, 8]
    got = apply_variant(DOC, top[1], "support-eval1")
    assert (
        got["fleet"] == "support-eval1"
        and got["tools"][0]["retrieval"] == {"topK": 8}
        and "retrieval" not in got["tools"][1]
    )
    assert DOC["tools"][0]["retrieval"] == {"topK": 5} and DOC["fleet"] == "support"  # the input is untouched
    cache = apply_variant(DOC, parse_compare("retrieval.cacheTtlSeconds=0,300")[0], "x")
    assert cache["tools"][0]["retrieval"] == {"topK": 5, "cacheTtlSeconds": 0}
    assert apply_variant(DOC, Variant("budgets.maxSteps=4", "budgets.maxSteps", 4), "x")["budgets"] == {"maxSteps": 4}
    # the index's spec as the runtime reads it, not a tool setting
    doc = {**DOC, "retrieval": {"vectorIndex": {"collection": "docs"}}}
    hybrid = apply_variant(doc, parse_compare("retrieval.vectorIndex.fullText=[{}]")[0], "x")
    assert hybrid["retrieval"]["vectorIndex"] == {"collection": "docs", "fullText": {}}
    assert hybrid["tools"] == DOC["tools"]


def test_an_ablation_runs_the_configuration_as_given_first_then_each_change_alone() -> None:
    plan = plan_variants(["decisions.repairAttempts=0", "decisions.toolPolicies=[[]]", "decisions.mode=ToolCalls"])
    assert [v.label for v in plan] == [
        "as configured",
        "decisions.repairAttempts=0",
        "decisions.toolPolicies=[]",
        "decisions.mode=ToolCalls",
    ]
    doc = {
        **DOC,
        "decisions": {
            "mode": "JSONSchema",
            "repairAttempts": 1,
            "toolPolicies": [{"tool": "search_docs", "firstStep": True}],
        },
    }
    assert apply_variant(doc, plan[0], "x") == {**doc, "fleet": "x"}
    assert apply_variant(doc, plan[2], "x")["decisions"] == {
        "mode": "JSONSchema",
        "repairAttempts": 1,
        "toolPolicies": [],
    }
    assert [v.label for v in plan_variants(["retrieval.topK=3,8"])] == [
        "retrieval.topK=3",
        "retrieval.topK=8",
    ]  # a sweep has no extra run
    assert [v.label for v in plan_variants(["budgets.maxSteps=4"])] == ["as configured", "budgets.maxSteps=4"]
    assert [v.value for v in parse_compare("decisions.toolPolicies=[[], [{tool: a, firstStep: true}]]")] == [
        [],
        [{"tool": "a", "firstStep": True}],
    ]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("retrieval.topK", "write KEY=V1,V2"),
        ("retrieval.topK=", "at least one value"),
        ("=1,2", "give a key"),
        ("a=[1, 2", "not one YAML flow sequence"),
    ],
)
def test_bad_compare_specs_say_what_to_write(spec: str, message: str) -> None:
    with pytest.raises(VariantError, match=message):
        parse_compare(spec)


def test_compare_needs_a_retrieval_tool_for_retrieval_keys() -> None:
    with pytest.raises(VariantError, match="no Retrieval tool"):
        apply_variant({"fleet": "f", "tools": []}, parse_compare("retrieval.topK=3,8")[0], "x")
    with pytest.raises(VariantError, match="fleet is not a section"):
        apply_variant(DOC, Variant("fleet.x=1", "fleet.x", 1), "x")


def test_status_record_holds_only_the_evaluation_and_validates() -> None:
    summary = {
        "tasks": 21,
        "success": 0.61904,
        "grounded": 0.5,
        "recall": 0.8333333,
        "recallK": 5,
        "latencyP95Seconds": 41.27,
        "costPerTask": "0.000412",
    }
    ev = evaluation_summary(
        summary,
        "postgres-manual#heldout",
        "retrieval.topK=3",
        now=dt.datetime(2026, 11, 22, 19, 45, 1, 5, tzinfo=dt.UTC),
    )
    body = status_patch("support", "agents", ev)
    assert body["metadata"] == {"name": "support", "namespace": "agents"} and list(body["status"]) == ["evaluation"]
    assert body["status"]["evaluation"] == {
        "taskSet": "postgres-manual#heldout",
        "finishedAt": "2026-11-22T19:45:01Z",
        "tasks": 21,
        "success": 0.619,
        "grounded": 0.5,
        "recall": 0.8333,
        "recallK": 5,
        "p95Seconds": 41.27,
        "costPerTask": "0.000412",
        "configuration": "retrieval.topK=3",
    }
    assert AgentFleetStatus.model_validate(body["status"]).evaluation == ev
    assert FIELD_MANAGER == "agentfleet-eval"


def test_the_status_carries_where_the_failures_come_from() -> None:
    summary = {"tasks": 4, "success": 0.25, "failureCauses": {"passageMissed": 1, "misread": 2}}
    ev = evaluation_summary(summary, "python-library#heldout")
    got = status_patch("support", "agents", ev)["status"]["evaluation"]["failureCauses"]
    assert got == {k: 0 for k in got} | {"passageMissed": 1, "misread": 2}
    assert list(got) == list(report.CAUSES)  # one name per cause, from the scorer and the report to the status


def test_outcome_adds_up_the_task_tree() -> None:
    root = {
        "id": "r",
        "status": "done",
        "reason": "final_answer",
        "answer": "a",
        "citations": ["x.html"],
        "stepCount": 3,
        "durationSeconds": 12.5,
        "treeUsage": {"totalTokens": 900, "cost": "0.00012"},
        "children": ["c1"],
        "steps": [{"toolCalls": [{"name": "search_docs"}, {"name": "delegate"}]}, {"toolCalls": []}],
        "retrieved": [{"source": "x.html", "rank": 1, "text": "t"}],
    }
    child = {
        "id": "c1",
        "stepCount": 2,
        "steps": [{"toolCalls": [{"name": "search_docs"}]}],
        "retrieved": [{"source": "y.html", "rank": 1, "text": "u"}],
    }
    o = outcome_of([root, child])
    assert (o.steps, o.model_calls, o.sub_agents, o.tokens, str(o.cost), o.latency_seconds) == (
        3,
        5,
        1,
        900,
        "0.00012",
        12.5,
    )
    assert o.tool_calls == {"search_docs": 2, "delegate": 1} and [p["task"] for p in o.retrieved] == ["r", "c1"]


@pytest.mark.parametrize(
    ("reply", "verdict"),
    [
        ('{"correct": true}', True),
        ('Sure: {"correct": false}', False),
        ("Yes.", True),
        ("no", False),
        ("maybe", None),
        ('{"correct": "y"}', None),
    ],
)
def test_judge_verdicts(reply: str, verdict: bool | None) -> None:
    assert parse_verdict(reply) is verdict


def test_a_spent_time_budget_starts_no_more_tasks() -> None:
    import time

    from agentfleet_eval.taskset import parse_task

    from agentfleet_client.evaluation.runner import Target, run_all

    task = parse_task({"id": "a", "part": "dev", "question": "q", "facts": ["x"], "supporting": ["p"]}, 0)
    # The URL would refuse connections: nothing is submitted once the budget is spent.
    got = run_all(
        Target("t", "http://127.0.0.1:9", "tok"),
        [task, task],
        run_id="r",
        concurrency=1,
        timeout=1,
        start_by=time.monotonic() - 1,
    )
    assert got == [None, None]


def test_cut_runs_take_tasks_round_robin_by_kind() -> None:
    from agentfleet_eval.taskset import parse_task

    from agentfleet_client.evaluation.cli import interleave_kinds

    ts = [
        parse_task({"id": i, "part": "dev", "kind": k, "question": "q", "facts": ["x"], "supporting": ["p"]}, 0)
        for i, k in [("a1", "a"), ("a2", "a"), ("a3", "a"), ("b1", "b"), ("c1", "c"), ("c2", "c")]
    ]
    assert [t.id for t in interleave_kinds(ts)] == ["a1", "b1", "c1", "a2", "c2", "a3"]
