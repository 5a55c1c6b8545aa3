"""Submission validation and the task view of the API."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agentfleet_runtime.submission import SubmitError, new_task, parse_submission, task_view
from agentfleet_runtime.types import Limits, TaskRecord

FLEET = Limits(max_steps=10, max_tokens=5000, timeout_seconds=60, max_cost=None)


def test_valid_submission_and_hash_is_stable():
    a = parse_submission({"goal": "g", "budgets": {"maxSteps": 3}}, "k1", 100, FLEET)
    b = parse_submission({"budgets": {"maxSteps": 3}, "goal": "g"}, None, 100, FLEET)
    assert a.idempotency_key == "k1" and b.idempotency_key is None
    assert a.request_hash == b.request_hash
    assert a.limits.max_steps == 3
    assert parse_submission({"goal": "g", "idempotencyKey": "k2"}, None, 100, FLEET).idempotency_key == "k2"


@pytest.mark.parametrize(
    "body, msg",
    [
        ([], "JSON object"),
        ({}, "goal is required"),
        ({"goal": "  "}, "goal is required"),
        ({"goal": "x" * 101}, "limit is 100"),
        ({"goal": "g", "extra": 1}, "unknown field"),
        ({"goal": "g", "budgets": []}, "budgets must be an object"),
        ({"goal": "g", "budgets": {"maxSteps": -1}}, "positive"),
        ({"goal": "g", "session": 5}, "session"),
        ({"goal": "g", "metadata": "x"}, "metadata"),
    ],
)
def test_invalid_submissions(body, msg):
    with pytest.raises(SubmitError, match=msg):
        parse_submission(body, None, 100, FLEET)


def test_tenant_goes_into_metadata():
    sub = parse_submission({"goal": "g", "tenant": "acme", "metadata": {"x": 1}}, None, 100, FLEET)
    assert sub.metadata == {"x": 1, "tenant": "acme"}
    with pytest.raises(SubmitError, match="tenant"):
        parse_submission({"goal": "g", "tenant": ""}, None, 100, FLEET)


def test_task_view():
    sub = parse_submission({"goal": "g", "session": "s"}, None, 100, FLEET)
    rec = new_task("abc", sub, 1000.0)
    assert rec.deadline == 1060.0 and rec.root == "abc"
    rec2 = TaskRecord.from_hash(rec.to_hash())
    assert rec2 == rec
    rec2.cost_nanos = 1_500_000
    view = task_view(rec2, {"tree_tokens": "7", "tree_cost_nanos": "1500000"}, [], 0, ["c1"], "USD")
    assert view["status"] == "queued" and view["answer"] is None
    assert view["cost"] == "0.0015" and view["treeUsage"] == {"totalTokens": 7, "cost": "0.0015"}
    assert view["children"] == ["c1"] and view["steps"] == []
    assert rec2.cost == Decimal("0.0015")


def test_task_view_lists_retrieved_passages_and_citations():
    from agentfleet_runtime.tools.retrieval import format_passages
    from agentfleet_runtime.types import Observation, Status, Step, ToolCall, Usage

    rec = new_task("t1", parse_submission({"goal": "VACUUM FULL lock?"}, None, 100, FLEET), 1000.0)
    rec.status, rec.answer = Status.DONE, "It takes an ACCESS EXCLUSIVE lock [source: sql-vacuum.html]."
    found = format_passages([{"source": "sql-vacuum.html", "score": 0.8, "text": "VACUUM FULL requires an ACCESS EXCLUSIVE lock."}])
    steps = [
        Step(0, "", [ToolCall("c0", "search_docs", {"query": "vacuum full lock"}), ToolCall("c1", "create_ticket", {})], Usage(5, 1), observations=[
            Observation("c0", "search_docs", True, found),
            Observation("c1", "create_ticket", True, found),  # not a retrieval tool: not a passage the task retrieved
        ]),
        Step(1, "", [ToolCall("c2", "search_docs", {"query": "x"})], Usage(5, 1), observations=[Observation("c2", "search_docs", False, "search_docs search failed: timeout")]),
    ]  # fmt: skip
    view = task_view(rec, {}, steps, 2, [], "USD", frozenset({"search_docs"}))
    assert view["citations"] == ["sql-vacuum.html"]
    assert view["retrieved"] == [
        {"step": 0, "call": 0, "rank": 1, "source": "sql-vacuum.html", "score": 0.8, "text": "VACUUM FULL requires an ACCESS EXCLUSIVE lock."}
    ]
    assert "retrieved" not in task_view(rec, {}, None, 2, [], "USD", frozenset({"search_docs"}))  # ?steps=0


@pytest.mark.parametrize(
    ("answer", "cited"),
    [
        ("The default is 5min [source: runtime-config-wal.html]", ["runtime-config-wal.html"]),
        ("A (sources: a.html, b.html; c.html) then [d.md#3].", ["a.html", "b.html", "c.html", "d.md#3"]),
        ("Sources: explicit-locking.html and sql-vacuum.html", ["explicit-locking.html", "sql-vacuum.html"]),
        ("See [sql-vacuum.html] and again [source: sql-vacuum.html]", ["sql-vacuum.html"]),
        ("The manual does not say. [1] is no citation, nor is (5min), [note] or postgresql.conf.", []),
        ("It is ACCESS EXCLUSIVE (see sql-vacuum.html and docs/explicit-locking.html).", ["sql-vacuum.html", "docs/explicit-locking.html"]),
        ("", []),
    ],
)
def test_citations_in_the_forms_agents_write_them(answer, cited):
    from agentfleet_runtime.citations import parse_citations

    assert parse_citations(answer) == cited
