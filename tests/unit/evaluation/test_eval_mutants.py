"""Behaviours of the scorer that mutation testing found unpinned (docs/mutation-testing.md): numbers
with thousands separators, which quantities an answer asserts, a "yes" to a question whose fact is
not a negation, and the default k of recall@k in a summary; and a progress line going to sys.stderr
as it is when the pass runs (a default bound at import wrote to a stream a test runner had closed,
which failed mutmut's clean run)."""

from __future__ import annotations

import pytest
from agentfleet_eval.scoring import _negative, asserted_values, judge_answer, numbers_in, summarize
from agentfleet_eval.taskset import parse_task

from agentfleet_client.evaluation.runner import Progress


def test_numbers_with_thousands_separators_are_read_whole() -> None:
    assert numbers_in("up to 131,072 digits before the point and 16,383 after") == [131072.0, 16383.0]


def test_a_bare_number_and_a_spelled_quantity_are_asserted_values_a_spelled_count_is_not() -> None:
    assert asserted_values("There are 4 of them.") == ["4"]
    assert asserted_values("It waits five minutes.") == ["five minutes"]
    assert asserted_values("There are three of them.") == []


def test_a_yes_is_right_where_the_fact_is_not_a_negation() -> None:
    t = parse_task(
        {"id": "y", "part": "dev", "question": "Is TRUNCATE faster than DELETE on a large table?", "supporting": ["p"],
         "facts": [{"any": ["quick", "not slow"], "about": "TRUNCATE"}]},
        0,
    )  # fmt: skip
    assert not _negative(t.facts[0])  # one alternative is not a negation
    assert judge_answer(t, "Yes. TRUNCATE is quick.").ok


def test_a_summary_reports_recall_at_five_unless_told() -> None:
    assert summarize([])["recallK"] == 5


def test_progress_writes_to_the_stderr_of_the_moment(capsys: pytest.CaptureFixture[str]) -> None:
    Progress(1, "pg").tick(True)
    assert "pg [" in capsys.readouterr().err
