"""Two readings the scorer got wrong on the PostgreSQL fresh-b set (2026-11-28): a bound ("no more
than 16,383") read as a negation of its value, and a fact on a module's own page that never writes the
module's name near it (pg_surgery's heap_force_freeze entry) read as stated far from the thing asked.
Both made right, cited answers ungrounded; the bound also made vacuumlo's right "no more than 1000"
wrong."""

from __future__ import annotations

from pathlib import Path

from agentfleet_eval.claims import negated
from agentfleet_eval.scoring import Outcome, judge_answer, page_of, score
from agentfleet_eval.taskset import load_taskset

ROOT = Path(__file__).resolve().parents[3]
TASKS = {
    t.id: t
    for name in ("postgres-manual-tasks.yaml", "postgres-manual-fresh-b-tasks.yaml")
    for t in load_taskset(ROOT / "e2e" / "eval" / name).tasks
}
# The passages as the fleet retrieved them (journal of the 1.5B's run on the fresh-b set).
FREEZE = (
    "heap_force_freeze(regclass, tid[]) returns void heap_force_freeze marks tuples as frozen without "
    "examining the tuple data. The intended use of this function is to make accessible tuples which are "
    "inaccessible due to corrupted visibility information."
)
LIMITS = (
    "## 12.11. Limitations  The current limitations of PostgreSQL's text search features are:  The length of "
    "each lexeme must be less than 2 kilobytes  No more than 256 positions per lexeme  Position values in "
    "tsvector must be greater than 0 and no more than 16,383"
)


def cited(task_id: str, answer: str, source: str, text: str) -> Outcome:
    return Outcome(
        status="done",
        reason="final_answer",
        answer=answer,
        citations=(source,),
        retrieved=({"rank": 1, "source": source, "text": text},),
    )


def test_a_bound_states_its_value() -> None:
    low = LIMITS.lower()
    at = low.index("16,383")
    assert not negated(low, at, at + 6)
    low = "it is not more than 5 seconds"
    assert not negated(low, low.index("5"), low.index("5") + 1)
    low = "the limit is not 5 seconds"  # a negation still negates
    assert negated(low, low.index("5"), low.index("5") + 1)


def test_no_more_than_the_default_answers_the_question() -> None:
    task = TASKS["fresh2-default-vacuumlo-limit"]
    assert judge_answer(task, "vacuumlo removes no more than 1000 large objects per transaction unless -l is given.").ok
    assert not judge_answer(task, "vacuumlo does not remove 1000 large objects per transaction.").ok


def test_a_bound_on_the_cited_page_grounds_the_value() -> None:
    task = TASKS["pgfb-default-tsvector-position-max"]
    answer = "The largest position value is 16,383. [source: textsearch-limitations.html]"
    assert score(task, cited(task.id, answer, "textsearch-limitations.html", LIMITS)).grounded


def test_the_page_of_a_name() -> None:
    assert page_of("pg_surgery", "pgsurgery.html")
    assert page_of("pg_amcheck", "app-pgamcheck.html")
    assert page_of("collections.abc", "collections.abc.html")
    assert page_of("pg_freespacemap", "html/pgfreespacemap.html")
    assert not page_of("pg_hba", "auth-pg-hba-conf.html")
    assert not page_of("autovacuum_naptime", "runtime-config-autovacuum.html")
    assert not page_of("pg_visibility", "pgsurgery.html")


def test_a_fact_on_the_modules_own_page_is_grounded_there_and_only_there() -> None:
    task = TASKS["pgfb-cmd-pg-surgery-freeze"]
    answer = "It is heap_force_freeze. [source: pgsurgery.html]"
    assert score(task, cited(task.id, answer, "pgsurgery.html", FREEZE)).grounded
    # The same words on another page are far from pg_surgery, as before.
    other = answer.replace("pgsurgery.html", "pgvisibility.html")
    assert score(task, cited(task.id, other, "pgvisibility.html", FREEZE)).grounded is False
