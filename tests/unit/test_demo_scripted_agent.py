"""Pure parts of the demo driver (e2e/demo): the scripted agent in front of the simulator,
the example's endpoint rewrite, and the report's figures."""

from __future__ import annotations

import json
from decimal import Decimal

from e2e.demo import report, scripted_agent
from e2e.demo.driver import localize

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


def test_localize_rewrites_endpoints_and_only_an_unplaceable_gpu():
    docs = [
        {
            "kind": "VectorIndex",
            "metadata": {"name": "v"},
            "spec": {"milvus": {"uri": "http://milvus:19530"}, "collection": "c"},
        },
        {
            "kind": "AgentFleet",
            "metadata": {"name": "a"},
            "spec": {"redis": {"url": "redis://redis:6379/0"}, "workers": {"replicas": 2}},
        },
        {
            "kind": "ModelReplicaSet",
            "metadata": {"name": "m"},
            "spec": {
                "gpu": {"product": "H200"},
                "engine": {"tensorParallelSize": 4},
                "autoscaling": {"prometheusURL": "http://prometheus.monitoring:9090"},
            },
        },
    ]
    out, notes = localize(
        docs,
        milvus_uri="http://127.0.0.1:1",
        redis_url="redis://127.0.0.1:2/0",
        prometheus_url="http://127.0.0.1:3",
        inventory={"L4": 4, "H100": 8, "A10G": 1},
    )
    assert out[0]["spec"] == {"milvus": {"uri": "http://127.0.0.1:1"}, "collection": "c"}
    assert out[1]["spec"] == {"redis": {"url": "redis://127.0.0.1:2/0"}, "workers": {"replicas": 2}}
    assert out[2]["spec"]["gpu"]["product"] == "H100"
    # The autoscaler reads the demo's Prometheus, which scrapes the local replicas.
    assert out[2]["spec"]["autoscaling"]["prometheusURL"] == "http://127.0.0.1:3"
    assert docs[0]["spec"]["milvus"]["uri"] == "http://milvus:19530"  # the input is left alone
    assert len(notes) == 4
    kept, _ = localize(docs[2:], milvus_uri="", redis_url="", prometheus_url="", inventory={"H200": 8})
    assert kept[0]["spec"]["gpu"]["product"] == "H200"


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


def _pod(name: str, phase: str = "Running", ip: str | None = "10.0.0.1", **meta) -> dict:
    return {
        "metadata": {"name": name, "labels": meta.pop("labels", {}), **meta},
        "spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8000}]}]},
        "status": {"phase": phase, "podIP": ip},
    }


def test_serving_pods_are_the_running_replica_servers():
    pods = [
        _pod("a"),
        _pod("b", phase="Pending"),
        _pod("c", ip=None),
        _pod("d", deletionTimestamp="2026-11-23T00:00:00Z"),
        _pod("e", labels={"agentfleet.io/role": "worker"}),
    ]
    assert scripted_agent.serving_pods(pods) == {"a": ("10.0.0.1", 8000)}


def test_assign_backs_new_pods_with_unused_replicas_first_and_releases_gone_ones():
    pool = ["u0", "u1", "u2"]
    new, gone = scripted_agent.assign({}, ["p0", "p1"], pool, [])
    assert (new, gone) == ({"p0": "u0", "p1": "u1"}, [])
    # p0 went away and released u0; a new pod gets the never-used u2 before u0.
    new, gone = scripted_agent.assign({"p0": "u0", "p1": "u1"}, ["p1", "p2"], pool, [])
    assert (new, gone) == ({"p2": "u2"}, ["p0"])
    new, _ = scripted_agent.assign({"p1": "u1", "p2": "u2"}, ["p1", "p2", "p3", "p4"], pool, ["u0"])
    assert new == {"p3": "u0"}  # the pool is used up: p4 waits
