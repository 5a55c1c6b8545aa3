"""Readings the scorer got wrong on the PostgreSQL fresh-e set (2026-11-28), found by a blind reader
of the run (docs/results/2026-11-28-eval-postgres-fresh-e.md) or by the writers of the fresh-e sets
checking their own right answers. Each right answer here scored wrong (or ungrounded where the reader
found it grounded, and the other way round); each wrong one beside it still scores wrong."""

from __future__ import annotations

from pathlib import Path

from agentfleet_eval.scoring import judge_answer
from agentfleet_eval.taskset import load_taskset, parse_task

from tests.unit.evaluation.test_eval_strict import candidates, scattershot

ROOT = Path(__file__).resolve().parents[3]
SET = load_taskset(ROOT / "e2e" / "eval" / "postgres-manual-fresh-e-tasks.yaml")
TASKS = {t.id: t for t in SET.tasks}


def task(question: str, facts: list, **fields):
    raw = {"id": "t", "part": "heldout", "kind": "default", "question": question, "facts": facts}
    return parse_task({**raw, "supporting": ["x.html"], **fields}, 0)


def test_the_other_end_of_a_bound_pair_is_no_competing_value() -> None:
    tsvector = TASKS["pgfe-default-tsvector-position-limit"]
    # the candidate's answer: "also states '0'", where the reader read it right
    right = (
        "The largest position value that a lexeme in a tsvector can carry is 16,383. This is stated in the passage "
        '[source: functions-textsearch.html] under the section "Position values in tsvector must be greater than 0 '
        'and no more than 16,383".'
    )
    assert judge_answer(tsvector, right).ok
    for pair in ("between 0 and 16383", "from 0 to 16,383", "0 through 16383", "at least 0 and at most 16383"):
        assert judge_answer(tsvector, f"Position values are {pair}.").ok, pair
    # two values that are no pair, and a bound pair ending at a wrong value, still compete
    for wrong in ("It is 16383, or 0.", "It is 0 or 16383.", "greater than 0 and no more than 32767"):
        assert not judge_answer(tsvector, wrong).ok, wrong
    # the lower end, asked for, excuses the upper one
    smallest = task("What is the smallest value the setting accepts?", [{"number": 1}])
    assert judge_answer(smallest, "It must be between 1 and 100.").ok
    assert not judge_answer(smallest, "It must be between 2 and 100.").ok
    # a question that asks for no end reads "between 8 and 16" as a hedge between two values
    default = task("What is the default of the setting?", [{"number": 16}])
    assert not judge_answer(default, "The default is between 8 and 16.").ok
    assert not judge_answer(default, "The default is from 8 to 16.").ok


def test_a_scattershot_answer_still_scores_zero_on_the_set() -> None:
    answer = scattershot(candidates(SET.tasks))
    assert [t.id for t in SET.tasks if judge_answer(t, answer).ok] == []
