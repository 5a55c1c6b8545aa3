"""Submission validation and the task view of the API."""

from __future__ import annotations

from decimal import Decimal

import pytest

from agentfleet_runtime.core.types import Limits, TaskRecord
from agentfleet_runtime.server.submission import (
    SubmitError,
    new_task,
    parse_body,
    parse_submission,
    stream_position,
    task_view,
)

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


def test_the_body_cannot_name_a_tenant():
    # The tenant is the token's (tenants.py); a body that names one is refused, not obeyed.
    # Fails on c4625b5, which copied it into metadata and charged the rate limit to it.
    with pytest.raises(SubmitError, match="tenant of your bearer token"):
        parse_submission({"goal": "g", "tenant": "victim"}, None, 100, FLEET)
    sub = parse_submission({"goal": "g", "metadata": {"tenant": "victim"}}, None, 100, FLEET)
    rec = new_task("t", sub, 1.0, "acme")
    assert rec.tenant == "acme" and TaskRecord.from_hash(rec.to_hash()).tenant == "acme"


@pytest.mark.parametrize(
    "raw, field",
    [
        (b'{"goal": "g", "budgets": {"timeoutSeconds": NaN}}', "budgets.timeoutSeconds"),
        (b'{"goal": "g", "budgets": {"timeoutSeconds": Infinity}}', "budgets.timeoutSeconds"),
        (b'{"goal": "g", "budgets": {"maxSteps": 1e400}}', "budgets.maxSteps"),
        (b'{"goal": "\\ud800"}', "goal"),
        (b'{"goal": "g", "metadata": {"a": ["x", "\\udfff"]}}', "metadata.a.1"),
        (b'{"goal": "g", "metadata": ' + b'{"a": ' * 40 + b"1" + b"}" * 41, "metadata.a.a"),
        (b"[" * 200_000 + b"]" * 200_000, "deeper than 32"),
        (b'{"goal": "\xff"}', "UTF-8"),
    ],
)
def test_bad_json_is_refused_naming_the_field(raw, field):
    # Each of these parsed on c4625b5 and then failed inside the API (500) or the worker
    # ("cannot convert float NaN to integer", a dead-lettered task).
    with pytest.raises(SubmitError, match=field.replace(".", "\\.")):
        parse_submission(parse_body(raw), None, 100, FLEET)


def test_nan_budgets_are_refused_even_past_the_parser():
    with pytest.raises(SubmitError, match="finite"):
        parse_submission({"goal": "g", "budgets": {"timeoutSeconds": float("nan")}}, None, 100, FLEET)


@pytest.mark.parametrize("value", ["0-0", "1700000000000-3", "1700000000000"])
def test_stream_positions(value):
    assert stream_position(value, "after") == value


@pytest.mark.parametrize(
    "value", ["", "$", "abc", "1-2-3", "-1", "9" * 30, "1-x", "20000000000000000000", "1-18446744073709551616"]
)
def test_bad_stream_positions_are_refused(value):
    with pytest.raises(SubmitError, match="after must be an event id"):
        stream_position(value, "after")


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
    from agentfleet_runtime.core.types import Observation, Status, Step, ToolCall, Usage
    from agentfleet_runtime.tools.retrieval import format_passages

    rec = new_task("t1", parse_submission({"goal": "VACUUM FULL lock?"}, None, 100, FLEET), 1000.0)
    rec.status, rec.answer = Status.DONE, "It takes an ACCESS EXCLUSIVE lock [source: sql-vacuum.html]."
    found = format_passages(
        [{"source": "sql-vacuum.html", "score": 0.8, "text": "VACUUM FULL requires an ACCESS EXCLUSIVE lock."}]
    )
    steps = [
        Step(
            0,
            "",
            [ToolCall("c0", "search_docs", {"query": "vacuum full lock"}), ToolCall("c1", "create_ticket", {})],
            Usage(5, 1),
            observations=[
                Observation("c0", "search_docs", True, found),
                Observation(
                    "c1", "create_ticket", True, found
                ),  # not a retrieval tool: not a passage the task retrieved
            ],
        ),
        Step(
            1,
            "",
            [ToolCall("c2", "search_docs", {"query": "x"})],
            Usage(5, 1),
            observations=[Observation("c2", "search_docs", False, ("search_docs search failed: timeout"))],
        ),
    ]
    view = task_view(rec, {}, steps, 2, [], "USD", frozenset({"search_docs"}))
    assert view["citations"] == ["sql-vacuum.html"]
    assert view["retrieved"] == [
        {
            "step": 0,
            "call": 0,
            "rank": 1,
            "source": "sql-vacuum.html",
            "score": 0.8,
            "text": "VACUUM FULL requires an ACCESS EXCLUSIVE lock.",
        }
    ]
    assert "retrieved" not in task_view(rec, {}, None, 2, [], "USD", frozenset({"search_docs"}))  # ?steps=0


@pytest.mark.parametrize(
    ("answer", "cited"),
    [
        ("The default is 5min [source: runtime-config-wal.html]", ["runtime-config-wal.html"]),
        ("A (sources: a.html, b.html; c.html) then [d.md#3].", ["a.html", "b.html", "c.html", "d.md#3"]),
        ("Sources: explicit-locking.html and sql-vacuum.html", ["explicit-locking.html", "sql-vacuum.html"]),
        ("Sources: a.html, and plpgsql-errors-and-messages.html", ["a.html", "plpgsql-errors-and-messages.html"]),
        ("See [sql-vacuum.html] and again [source: sql-vacuum.html]", ["sql-vacuum.html"]),
        ("The manual does not say. [1] is no citation, nor is (5min), [note] or postgresql.conf.", []),
        (
            "It is ACCESS EXCLUSIVE (see sql-vacuum.html and docs/explicit-locking.html).",
            ["sql-vacuum.html", "docs/explicit-locking.html"],
        ),
        # A file named in parentheses is prose unless it is a document file; in square brackets it cites.
        ("It looks for pythonXY.zip (python311.zip) [sys_path_init.html].", ["sys_path_init.html"]),
        ("Settings live in [settings.yaml] (see also (defaults.yaml)).", ["settings.yaml"]),
        ("", []),
    ],
)
def test_citations_in_the_forms_agents_write_them(answer, cited):
    from agentfleet_runtime.core.citations import parse_citations

    assert parse_citations(answer) == cited
