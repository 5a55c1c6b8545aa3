"""Pure parts of the demo driver (e2e/demo): the scripted agent in front of the simulator,
the example's endpoint rewrite, and the report's figures."""

from __future__ import annotations

import json
from decimal import Decimal

from e2e.demo import report, scripted_agent

OBS = (
    "[1] (serving.md, score 0.502)\nRouting is sticky.\nSecond line.\n\n[2] (agents.md, score 0.3)\nBudgets cap steps."
)


def _call(name: str, args: dict) -> dict:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}],
    }


def test_simple_goal_searches_then_answers_from_the_best_passage():
    msgs = [{"role": "system", "content": "s"}, {"role": "user", "content": "How does routing work?"}]
    first = scripted_agent.decide(msgs, "search_docs", "delegate")
    assert first.tool_calls == [{"name": "search_docs", "arguments": {"query": "How does routing work?"}}]
    msgs += [_call("search_docs", {"query": "x"}), {"role": "tool", "content": OBS}]
    final = scripted_agent.decide(msgs, "search_docs", "delegate")
    assert not final.tool_calls
    assert final.content == "Routing is sticky. Second line. [source: serving.md]"


def test_compare_goal_delegates_two_sub_questions_and_reports_their_answers():
    msgs = [
        {"role": "user", "content": "Compare Retrieval tools and Spawn tools"},
        _call("search_docs", {}),
        {"role": "tool", "content": OBS},
    ]
    step = scripted_agent.decide(msgs, "search_docs", "delegate")
    assert step.tool_calls == [
        {"name": "delegate", "arguments": {"goals": ["What is Retrieval tools?", "What is Spawn tools?"]}}
    ]
    spawn_obs = (
        '2 of 2 sub-agents finished\n[{"task": "t.1", "answer": "A searches."}, {"task": "t.2", "answer": "B fans '
        'out."}]'
    )
    msgs += [_call("delegate", {}), {"role": "tool", "content": spawn_obs}]
    final = scripted_agent.decide(msgs, "search_docs", "delegate")
    assert final.content.splitlines() == [
        "Routing is sticky. Second line. [source: serving.md]",
        "- sub-agent: A searches.",
        "- sub-agent: B fans out.",
    ]
    # Without a Spawn tool the same goal never delegates.
    assert scripted_agent.decide(msgs[:3], "search_docs", None).content.startswith("Routing is sticky.")


def test_no_passages_is_said_plainly():
    msgs = [
        {"role": "user", "content": "q"},
        _call("search_docs", {}),
        {"role": "tool", "content": "search_docs found nothing"},
    ]
    assert scripted_agent.decide(msgs, "search_docs", None).content == "I found nothing in the documentation about: q"


def test_reply_body_carries_the_simulators_usage_and_native_tool_calls():
    body = scripted_agent.reply_body(
        scripted_agent.Decision(tool_calls=[{"name": "t", "arguments": {"a": 1}}]), "m", {"prompt_tokens": 7}
    )
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert json.loads(choice["message"]["tool_calls"][0]["function"]["arguments"]) == {"a": 1}
    assert body["usage"] == {"prompt_tokens": 7}


def test_report_figures():
    tasks = [
        {
            "status": "done",
            "reason": "final_answer",
            "durationSeconds": 1.0,
            "stepCount": 2,
            "children": [],
            "treeUsage": {"cost": "0.0002", "totalTokens": 100},
        },
        {
            "status": "done",
            "reason": "final_answer",
            "durationSeconds": 3.0,
            "stepCount": 3,
            "children": ["c1", "c2"],
            "treeUsage": {"cost": "0.0004", "totalTokens": 300},
        },
        {
            "status": "dead",
            "reason": "failed",
            "durationSeconds": 9.0,
            "stepCount": 1,
            "children": [],
            "usage": {"totalTokens": 5},
            "cost": "0.1",
        },
    ]
    s = report.summarize(tasks)
    assert (s["done"], s["failed"], s["steps"], s["children"], s["tokens"]) == (2, 1, 6, 2, 405)
    assert s["cost_per_task"] == Decimal("0.0003")
    assert s["p95"] == 3.0
    page = (
        'x_total{tool="search_docs",outcome="ok"} 3\nx_total{tool="other",outcome="ok"} '
        '5\nx_total{tool="search_docs",outcome="error"} 1\n'
    )
    assert report.metric_sums([page, page], "x_total", by="outcome", where={"tool": "search_docs"}) == {
        "ok": 6.0,
        "error": 2.0,
    }
    assert report.bar(5, 20, elapsed=1.0).startswith("[#######.......................] 5/20 tasks")
