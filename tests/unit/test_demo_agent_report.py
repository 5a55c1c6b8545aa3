"""The demo report's agent figures (e2e/demo/report.py) and the small-model fleet settings
(e2e/demo/driver.py), from task records shaped like the task API's."""

from __future__ import annotations

import argparse

import pytest
from agentfleet_contract.agentfleet import AgentFleet

from e2e.demo import report
from e2e.demo.driver import Demo, small_model_settings

PASSAGES = (
    "[1] (docs/routing.md, score 0.612)\nSticky routing keeps a task on its replica.\n\n[2] (docs/budgets.md, score "
    "0.401)\nBudgets end tasks."
)


def task(tid, answer, steps, children=(), parent=None):
    return {
        "task": {
            "id": tid,
            "answer": answer,
            "stepCount": len(steps),
            "steps": steps,
            "children": [c["task"]["id"] for c in children],
            "parent": parent,
        },
        "children": list(children),
    }


def search_step(ok=True, seconds=2.0):
    return {
        "toolCalls": [{"name": "search_docs", "arguments": {"query": "q"}}],
        "observations": [{"name": "search_docs", "ok": ok, "output": PASSAGES}],
        "modelSeconds": seconds,
    }


def answer_step(seconds=3.0):
    return {"toolCalls": [], "observations": None, "modelSeconds": seconds}


def test_agent_figures_count_searches_citations_and_sub_agents():
    cited = task("a", "It stays on its replica.\n\nSources: docs/routing.md", [search_step(), answer_step()])
    by_file_name = task("b", "See routing.md.", [search_step(), answer_step()])
    unretrieved = task("c", "Sources: docs/other.md", [search_step(), answer_step()])
    no_search = task("d", "From memory.", [answer_step(1.0)])
    child = task("e.0.0.0", "child answer", [search_step(), answer_step()], parent="e")
    delegating = task(
        "e",
        "Both.",
        [
            {
                "toolCalls": [{"name": "delegate", "arguments": {"goals": ["x"]}}],
                "observations": [],
                "modelSeconds": 4.0,
            },
            answer_step(),
        ],
        [child],
    )
    f = report.agent_figures([cited, by_file_name, unretrieved, no_search, delegating], "search_docs", "delegate")
    assert f["steps_per_task"] == [2, 2, 2, 1, 2]
    assert f["tool_calls"] == {"delegate": 1, "search_docs": 4}
    assert f["searched"] == 4  # the delegating task searched through its sub-agent
    assert f["cited"] == 2  # a source nobody retrieved does not count, nor an answer without one
    assert f["spawned"] == 1 and f["subagent_tasks"] == 1
    assert f["model_steps"] == 11 and f["step_p50"] == 3.0 and f["step_p95"] == 4.0
    text = report.render_agents(f)
    assert "searched     4 of 5 tasks (80%)" in text and "cited        2 of 5" in text


def test_failed_searches_retrieve_nothing():
    t = task("a", "Sources: docs/routing.md", [search_step(ok=False), answer_step()])
    assert report.agent_figures([t], "search_docs", None)["cited"] == 0


def test_small_model_settings_are_valid_agentfleet_settings():
    af = {
        "apiVersion": "agentfleet.io/v1alpha1",
        "kind": "AgentFleet",
        "metadata": {"name": "support"},
        "spec": {
            "modelRef": {"name": "m"},
            "vectorIndexRef": {"name": "docs"},
            "redis": {"url": "redis://r:6379/0"},
            "tools": [
                {"name": "search_docs", "type": "Retrieval"},
                {"name": "create_ticket", "type": "HTTP", "http": {"url": "http://t:8080/"}},
                {"name": "delegate", "type": "Spawn"},
            ],
        },
    }
    notes = small_model_settings([af])
    assert af["spec"]["decisions"] == {
        "mode": "JSONSchema",
        "repairAttempts": 1,
        "toolPolicies": [{"tool": "search_docs", "firstStep": True}, {"tool": "create_ticket", "maxCallsPerTask": 0}],
    }
    assert "delegate" in af["spec"]["systemPrompt"]["inline"] and notes
    AgentFleet.model_validate(af)  # the API accepts what the demo applies


def test_the_demo_without_a_cluster_says_so_and_writes_nothing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # A demo folder left behind in the cluster's state directory made `cluster.sh up` refuse it.
    state = tmp_path / "agentfleet-cluster"
    args = argparse.Namespace(
        namespace="agentfleet-demo", kubeconfig=str(state / "kubeconfig"), kubectl="kubectl", state_dir=None
    )
    with pytest.raises(SystemExit, match="no cluster: .*kubeconfig does not exist"):
        Demo(args)
    assert not state.exists()
