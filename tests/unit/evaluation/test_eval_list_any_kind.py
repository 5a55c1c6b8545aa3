"""A scorer no list can pass (issue 76, finding 8): an answer that names the expected value among
other candidates for the same fact scores zero whatever the candidates' kinds.

The hidden probe of the third review: a list naming the expected value among candidates of other
kinds than the expected fact (a duration among strings, a tuple among names) passed on 6 of the
619 answerable questions of the shipped task sets. The enumeration rule counted only short items
(so a long candidate phrase, or a long expected phrase, took a list under five), counted a value
found inside another candidate ("2" in "a 2-tuple") as a statement of its own, and lost an item
that starts with a separator ("/usr/local/pgsql", "''"). Here every answerable question of every
shipped task set gets such lists, with the expected value at every position, and each must score
zero; the right answer, stated alone, still scores right.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from agentfleet_eval.claims import as_form
from agentfleet_eval.scoring import Verdict, judge_answer
from agentfleet_eval.taskset import load_taskset

ROOT = Path(__file__).resolve().parents[3]
SETS = [load_taskset(p) for p in sorted((ROOT / "e2e" / "eval").glob("*-tasks.yaml"))]
ANSWERABLE = [(s, t) for s in SETS for t in s.tasks if t.expect != "decline"]
FORMS = ("It is one of: {}.", "{}", "Candidates: {}.", "The answer could be {}.")


def _kind(value: str) -> str:
    f = as_form(value)
    return f.quantity.dim if f.quantity else f.vocab or "phrase"


def _values(tasks) -> list[str]:
    return [x for t in tasks for f in (*t.facts, *t.wrong) for x in (*f.texts, *(format(n, "g") for n in f.numbers))]


def _expected(fact) -> str:
    return fact.texts[0] if fact.texts else format(fact.numbers[0], "g")


def _right(task) -> str:
    return " ".join(
        f"For {f.about}, it is {_expected(f)}." if f.about else f"It is {_expected(f)}." for f in task.facts
    )


def scattershots(taskset, task, n: int = 6) -> list[str]:
    """Lists of 5-7 candidates for the task's first fact: its expected value among values of other
    kinds from the same set (the review's probe), at every position, in several phrasings; the
    task's other facts (if any) are stated plainly after the list."""
    expected = [_expected(f) for f in task.facts]
    mine = set(_values([task]))
    pool = [v for v in dict.fromkeys(_values(taskset.tasks)) if v not in mine and _kind(v) != _kind(expected[0])]
    rest = " ".join(f"It is {x}." for x in expected[1:])
    rng = random.Random(task.id)
    out = []
    for i in range(n):
        picks = rng.sample(pool, min(len(pool), 4 + i % 3))
        pos = i % (len(picks) + 1)
        items = [*picks[:pos], expected[0], *picks[pos:]]
        listed = FORMS[i % len(FORMS)].format(", ".join(items)).rstrip(".") + "."
        out.append(f"{listed} {rest}".strip())
    return out


def test_every_shipped_set_is_read() -> None:
    assert len(SETS) >= 14 and len(ANSWERABLE) == 619


@pytest.mark.parametrize("taskset", SETS, ids=lambda s: s.name)
def test_a_list_of_candidates_of_any_kind_scores_zero_on_every_answerable_question(taskset) -> None:
    passed = [
        (t.id, answer)
        for s, t in ANSWERABLE
        if s is taskset
        for answer in scattershots(taskset, t)
        if judge_answer(t, answer).ok
    ]
    assert passed == []


@pytest.mark.parametrize(
    "task_id, answer",
    [
        # The kinds the review named: a tuple among names, a duration among strings.
        ("pyfb-default-xmlrpc-rpc-paths", "It is one of: 32 MiB, 2, zero, ('/', '/RPC2'), 75%."),
        (
            "pyfb-behaviour-gc-collect-return",
            "It is one of: number of unreachable objects found, 0.5 s, 0.75, 502, 75%.",
        ),
        ("pgfc-default-pg-buffercache-role", "pg_monitor, same name as the current system user, bit(8), 3, never"),
        ("pgfb-default-pg-upgrade-port", "50432, bt_index_parent_check, SHAREABLE, <@>, number of rows"),
        ("pgf-default-install-prefix", "It is one of: /usr/local/pgsql, 2048 bytes, three seconds, 10 seconds, 2kB."),
        ("pyfb-behaviour-optparse-error-exit-status", "__main__, 2, None, 'tab', a 2-tuple of empty strings"),
        ("pyfb-default-fancyurlopener-maxtries", "10, 0.5 seconds, TCPServer, <input>, ''"),
    ],
)
def test_the_lists_that_passed_before_score_zero(task_id, answer) -> None:
    task = next(t for _, t in ANSWERABLE if t.id == task_id)
    verdict = judge_answer(task, answer)
    assert not verdict.ok and "list" in verdict.why, verdict


def test_the_right_answer_alone_still_scores_right() -> None:
    # 615 of the 619 pass stated as "It is X." (the other four need more words than that: a subject
    # their facts are said of), as before the change.
    right = [t.id for _, t in ANSWERABLE if judge_answer(t, _right(t)).ok]
    assert len(right) == 615


@pytest.mark.parametrize(
    "task_id, answer",
    [
        # Stored right answers (docs/results/data) that aa18bca's rule failed as lists of 5 or 8
        # candidates. The parts of the expected value ("column1, column2") continued by the pattern
        # (2026-11-28-postgres-fresh-c, closed-book):
        (
            "pgfc-default-values-column-names",
            'The column names in PostgreSQL are "column1", "column2", "column3", etc., when no aliases are'
            " assigned to them in a VALUES list.",
        ),
        # The question's own subjects and the other fact's answer (2026-11-28-05b-python-fresh-reread,
        # closed-book):
        (
            "pyf-cmp-array-short-vs-long-long",
            "In the array module, the minimum sizes of the signed short and the signed long long type codes"
            " are 2 and 8, respectively.",
        ),
        # The expected tuple's elements, restated after "which means" beside the question's names
        # (2026-11-28-python-fresh-b-verify, cand):
        (
            "pyfb-default-xmlrpc-rpc-paths",
            "The default value of the `rpc_paths` attribute is `('/', '/RPC2')`, which means that XML-RPC requests"
            " will be accepted on the root URL (`/`) and the `/RPC2` path. If the `rpc_paths` attribute is"
            " changed, XML-RPC requests will only be accepted on the paths listed in the tuple.\n\n"
            "Sources: xmlrpc.server.html",
        ),
    ],
)
def test_an_enumeration_of_the_fact_itself_is_no_list_of_guesses(task_id, answer) -> None:
    task = next(t for _, t in ANSWERABLE if t.id == task_id)
    verdict = judge_answer(task, answer)
    assert verdict == Verdict(True, "ok"), verdict.why
