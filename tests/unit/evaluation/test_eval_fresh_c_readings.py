"""Two readings the scorer got wrong on the fresh-c sets (2026-11-28).

- A negation the answer repeats from its question: asked "which value does runpy.run_path() give
  __name__ when run_name is not passed?", the answer "the value ... when run_name is not passed is
  '<run_path>'" was read as negating '<run_path>', because "not" stands within five words before it.
  Four right answers of the fleet and two of the baselines were scored wrong this way. A negator
  followed by the same word as in the question restates the question's condition.
- A second predefined role: "pg_read_all_data may use pg_buffercache ... restricted to roles with the
  privileges of the pg_monitor role" names two roles where one is asked for, and was scored right,
  because no vocabulary knew the roles.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from agentfleet_eval.claims import echoes, negated
from agentfleet_eval.scoring import Outcome, judge_answer, score
from agentfleet_eval.taskset import load_taskset

ROOT = Path(__file__).resolve().parents[3]
TASKS = {
    t.id: t
    for name in ("python-library-fresh-c-tasks.yaml", "postgres-manual-fresh-c-tasks.yaml")
    for t in load_taskset(ROOT / "e2e" / "eval" / name).tasks
}


def test_the_questions_negated_conditions_are_its_echoes() -> None:
    assert echoes("Which value when run_name is not passed? It cannot be found.") == {
        ("not", "passed"),
        ("cannot", "be"),
    }
    assert echoes("Which value does it take by default?") == frozenset()


def test_a_repeated_condition_negates_nothing_and_a_new_negation_still_does() -> None:
    echo = echoes("What is used when run_name is not passed?")
    low = "the value used when run_name is not passed is '<run_path>'"
    at = low.index("'<run_path>'")
    assert negated(low, at, at + 12)  # without the question: "not" is five words before
    assert not negated(low, at, at + 12, echo)
    low = "the value used is not '<run_path>'"  # "not" followed by another word than the question's
    at = low.index("'<run_path>'")
    assert negated(low, at, at + 12, echo)


@pytest.mark.parametrize(
    ("task_id", "answer"),
    [
        (
            "pyfc-default-run-path-run-name",
            "The value of __name__ in the code it runs when run_name is not passed is '<run_path>'.",
        ),
        (
            "pyfc-default-compile-command-symbol",
            "The grammar start symbol for codeop.compile_command() when its symbol argument is not given is 'single'.",
        ),
        (
            "pgfc-cmd-num-nonnulls",
            "The comparison function that returns how many of its arguments are not null is `num_nonnulls`.",
        ),
    ],
)
def test_a_right_answer_repeating_the_questions_condition_is_right(task_id: str, answer: str) -> None:
    assert judge_answer(TASKS[task_id], answer).ok


@pytest.mark.parametrize(
    ("task_id", "answer"),
    [
        ("pyfc-default-run-path-run-name", "When run_name is not passed, __name__ is not '<run_path>'."),
        ("pyfc-default-run-path-run-name", "When run_name is not passed, __name__ is '__main__', never '<run_path>'."),
        ("pyfc-default-run-path-run-name", "When run_name is not passed __name__ is '__main__'."),
        ("pgfc-cmd-num-nonnulls", "The function that counts arguments that are not null is not `num_nonnulls`."),
    ],
)
def test_a_wrong_answer_repeating_the_questions_condition_is_still_wrong(task_id: str, answer: str) -> None:
    assert not judge_answer(TASKS[task_id], answer).ok


def test_a_passage_repeating_the_questions_condition_grounds_the_value() -> None:
    task = TASKS["pyfc-default-run-path-run-name"]
    answer = "It is '<run_path>' [source: runpy.html]."
    passage = "The value of __name__ when run_name is not passed is set to '<run_path>' by run_path()."
    o = Outcome(
        status="done",
        answer=answer,
        citations=("runpy.html",),
        retrieved=({"rank": 1, "source": "runpy.html", "text": passage},),
    )
    s = score(task, o)
    assert (s.success, s.grounded) == (True, True), s.why


def test_a_second_predefined_role_competes() -> None:
    task = TASKS["pgfc-default-pg-buffercache-role"]
    assert judge_answer(task, "Roles with the privileges of `pg_monitor` may use it [source: pgbuffercache.html].").ok
    half_wrong = (
        'The roles with privileges of the predefined role "pg_read_all_data" may use the pg_buffercache view. '
        "This is because the view is restricted to superusers and roles with the privileges of the pg_monitor role."
    )
    assert not judge_answer(task, half_wrong).ok
    assert not judge_answer(task, "pg_monitor, pg_read_all_data, pg_read_all_settings or pg_signal_backend.").ok
