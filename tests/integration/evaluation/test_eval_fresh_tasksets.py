"""Each corpus's fresh task sets (e2e/eval/corpus.py's ``Corpus.fresh``; issue 59), checked against
their documents with test_eval_corpora.py's helpers.

A fresh set is written from the pages alone and never tuned on: every task is held out, it has the
main set's kinds, each fact is stated on a supporting page near a term of its question, no question
contains its own facts, and it shares no supporting page and no fact with the main set's part dev
(what was tuned on must not answer it) and no question with the main set. A later fresh set shares no
supporting page with any task written before it: it was written after the earlier ones had been run.
The documents are Debian packages, installed with apt-get when missing (postgresql-doc-15 and
python3.11-doc, ~25 s each).
"""

from __future__ import annotations

from collections import Counter
from functools import cache
from typing import Any

import pytest
import yaml
from agentfleet_eval.taskset import check_parts, load_taskset

from e2e.eval.corpus import CORPORA
from tests.integration.evaluation.test_eval_corpora import (
    _alternatives,
    _norm,
    _page,
    _tasks,
    _terms,
    absent_terms,
    pages_mentioning,
    question_leaks,
    stated_near,
)

SIZE = 40
SUFFIX_PREFIX = {
    ("postgres", ""): "pgf-",
    ("postgres", "-b"): "pgfb-",
    ("python", ""): "pyf-",
    ("python", "-b"): "pyfb-",
    ("postgres", "-c"): "pgfc-",
    ("python", "-c"): "pyfc-",
    ("postgres", "-d"): "pgfd-",
    ("python", "-d"): "pyfd-",
    ("postgres", "-e"): "pgfe-",
    ("python", "-e"): "pyfe-",
    ("postgres", "-f"): "pgff-",
    ("python", "-f"): "pyff-",
}
# (corpus, which of its fresh sets): every fresh set of every corpus, oldest first.
FRESH = [(name, i) for name in sorted(CORPORA) for i in range(len(CORPORA[name].fresh))]
IDS = [f"{name}-{i}" for name, i in FRESH]


def _suffix(name: str, i: int) -> str:
    """The set's name after the main set's: '' for <main>-fresh, '-b' for <main>-fresh-b."""
    stem = CORPORA[name].fresh[i].name.removesuffix("-tasks.yaml")
    return stem[stem.index("-fresh") + len("-fresh") :]


@cache
def _fresh(name: str, i: int) -> list[dict[str, Any]]:
    return yaml.safe_load(CORPORA[name].fresh[i].read_text())["tasks"]


def missing_facts(name: str, tasks: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """(task, fact) for each fact that none of its supporting pages states near a term of its question."""
    missing = []
    for t in tasks:
        terms = _terms(t["question"])
        texts = [_page(name, s) for s in t.get("supporting") or []]
        for f in t.get("facts") or []:
            if not any(stated_near(a, terms, text) for a in _alternatives(f) for text in texts):
                missing.append((t["id"], f))
    return missing


@pytest.mark.parametrize(("name", "i"), FRESH, ids=IDS)
def test_the_fresh_set_loads_held_out_with_the_main_sets_kinds(name: str, i: int) -> None:
    corpus = CORPORA[name]
    fresh, main = load_taskset(corpus.fresh[i]), load_taskset(corpus.tasks)
    assert fresh.name == f"{main.name}-fresh{_suffix(name, i)}"
    assert len(fresh.tasks) == SIZE
    prefix = SUFFIX_PREFIX[name, _suffix(name, i)]
    assert [t.id for t in fresh.tasks if t.part != "heldout" or not t.id.startswith(prefix)] == []
    kinds = Counter(t.kind for t in fresh.tasks)
    assert set(kinds) == {t.kind for t in main.tasks}
    assert kinds["unanswerable"] >= 4 and kinds["multihop"] >= 4
    assert all(len(t.supporting) >= 2 for t in fresh.tasks if t.kind == "multihop")
    assert all(t.expect == "decline" and not t.supporting for t in fresh.tasks if t.kind == "unanswerable")


@pytest.mark.parametrize(("name", "i"), FRESH, ids=IDS)
def test_fresh_facts_are_stated_on_their_pages_near_what_is_asked(name: str, i: int) -> None:
    tasks = _fresh(name, i)
    assert missing_facts(name, tasks) == []
    for t in tasks:
        right = {a for f in t.get("facts") or [] for a in _alternatives(f)}
        assert not right & {a for w in t.get("wrong") or [] for a in _alternatives(w)}, t["id"]


@pytest.mark.parametrize(("name", "i"), FRESH, ids=IDS)
def test_a_fact_that_is_not_on_its_page_is_found(name: str, i: int) -> None:
    # The check can fail: the first answerable task with its facts replaced by a number no page near
    # its question states.
    task = next(t for t in _fresh(name, i) if t.get("facts"))
    assert missing_facts(name, [{**task, "facts": [{"number": 987654321}]}]) == [(task["id"], {"number": 987654321})]


@pytest.mark.parametrize(("name", "i"), FRESH, ids=IDS)
def test_no_fresh_question_contains_its_own_facts(name: str, i: int) -> None:
    assert question_leaks(_fresh(name, i)) == []


@pytest.mark.parametrize(("name", "i"), FRESH, ids=IDS)
def test_the_fresh_set_shares_no_page_and_no_fact_with_the_main_sets_dev_part(name: str, i: int) -> None:
    dev = [t for t in _tasks(name) if t["part"] == "dev"]
    dev_pages = {s for t in dev for s in t.get("supporting") or []}
    dev_facts = {a for t in dev for f in t.get("facts") or [] for a in _alternatives(f)}
    shared_pages, shared_facts = [], []
    for t in _fresh(name, i):
        shared_pages += [(t["id"], s) for s in t.get("supporting") or [] if s in dev_pages]
        shared_facts += [(t["id"], a) for f in t.get("facts") or [] for a in _alternatives(f) if a in dev_facts]
    assert (shared_pages, shared_facts) == ([], [])
    # and as the loader compares parts (quantities by value: 5min is 300s)
    corpus = CORPORA[name]
    check_parts(load_taskset(corpus.tasks).part("dev").tasks + load_taskset(corpus.fresh[i]).tasks)


@pytest.mark.parametrize(("name", "i"), FRESH, ids=IDS)
def test_no_fresh_question_is_one_of_the_main_sets(name: str, i: int) -> None:
    main = {_norm(t["question"]) for t in _tasks(name)}
    main |= {_norm(t["question"]) for j in range(i) for t in _fresh(name, j)}  # nor of an earlier fresh set
    assert [t["id"] for t in _fresh(name, i) if _norm(t["question"]) in main] == []


def pages_seen_before(name: str, i: int, tasks: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(task, page) for each supporting page of ``tasks`` (fresh set ``i``) that a task of the main
    set or of an earlier fresh set names."""
    before = {s for t in _tasks(name) for s in t.get("supporting") or []}
    before |= {s for j in range(i) for t in _fresh(name, j) for s in t.get("supporting") or []}
    return [(t["id"], s) for t in tasks for s in t.get("supporting") or [] if s in before]


LATER = [(n, i) for n, i in FRESH if i > 0]


@pytest.mark.parametrize(("name", "i"), LATER, ids=[f"{n}-{i}" for n, i in LATER])
def test_a_later_fresh_set_uses_no_page_an_earlier_task_uses(name: str, i: int) -> None:
    tasks = _fresh(name, i)
    assert pages_seen_before(name, i, tasks) == []
    # The check can fail: a task leaning on a page the first fresh set asked about.
    task, page = next(t for t in tasks if t.get("supporting")), _fresh(name, 0)[0]["supporting"][0]
    assert pages_seen_before(name, i, [{**task, "supporting": [page]}]) == [(task["id"], page)]


@pytest.mark.parametrize(("name", "i"), FRESH, ids=IDS)
def test_fresh_unanswerable_questions_ask_about_things_no_page_mentions(name: str, i: int) -> None:
    """Each decline rests on the thing asked about being absent from every page, which its notes
    name; each named thing is in its own question."""
    for t in (t for t in _fresh(name, i) if t["kind"] == "unanswerable"):
        terms = absent_terms(t)
        assert terms and all(x.lower() in t["question"].lower() for x in terms), t["id"]
        assert {x: pages_mentioning(CORPORA[name], x) for x in terms} == {x: [] for x in terms}, t["id"]
