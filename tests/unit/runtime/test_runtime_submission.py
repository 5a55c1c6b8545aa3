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
