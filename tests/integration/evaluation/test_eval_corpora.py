"""The shipped task sets, checked against their documents (e2e/eval/corpus.py's corpora).

Each fact must be on one of its supporting pages near a term of its question, the parts must share
no supporting page and no fact (tuning on dev must not teach held-out answers), and no question may
contain its own answer. The documents are Debian packages, installed with apt-get when missing
(postgresql-doc-15 and python3.11-doc, ~25 s each).
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from typing import Any

import pytest
import yaml
from agentfleet_eval.taskset import PARTS, load_taskset

from e2e.eval.corpus import CORPORA, Corpus

# How far (characters of page text) a fact may be from a term of its question and still count as
# stated about it: a settings entry (PostgreSQL's run to 1,000 characters) or a function's paragraph,
# not the next section or the next page.
NEAR = 1200
# Question words that name no thing in the documents: every page has them.
GENERIC = set(
    """what which when where does with without from into that this than then there their them they have
    how many much long default defaults value values given used uses using make makes made after
    before other another each every most more least less only also same compare between while whose
    ones first second both need needs needed would could should about python postgresql server""".split()
)
KINDS = {"default", "comparison", "multihop", "unanswerable"}


def _norm(text: str) -> str:
    t = unicodedata.normalize("NFKC", text).replace("\u2019", "'").replace("\u2018", "'")
    t = t.replace("\u201c", '"').replace("\u201d", '"').replace("\u2013", "-").replace("\u2014", "-")
    return " ".join(t.lower().split())


def _alternatives(fact: Any) -> list[str | float]:
    """A fact's forms: strings (normalised) and numbers, whatever shape the task file gives it in."""
    if isinstance(fact, dict) and "any" in fact:  # {any: [...]}, with an optional about: NAME
        return _alternatives(fact["any"])
    if isinstance(fact, dict):
        return [float(fact["number"])]
    if isinstance(fact, list):
        return [a for x in fact for a in _alternatives(x)]
    if isinstance(fact, (int, float)):
        return [float(fact)]
    return [_norm(str(fact))]


def _where(alt: str | float, text: str) -> list[int]:
    """Offsets of ``alt`` in normalised ``text``: a number as a whole number token, a string not
    inside a longer word."""
    if isinstance(alt, float):
        found = re.finditer(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e-?\d+)?(?![\w]|\.\d)", text)
        return [m.start() for m in found if float(m.group(0)) == alt]
    head = r"(?<![a-z0-9])" if alt[:1].isalnum() else ""
    tail = r"(?![a-z0-9])" if alt[-1:].isalnum() else ""
    return [m.start() for m in re.finditer(head + re.escape(alt) + tail, text)]


def _terms(question: str) -> list[str]:
    """The words of a question that name the thing asked about (identifiers, options, keywords)."""
    words = re.findall(r"[A-Za-z_][\w.\-/]*[\w]|[A-Za-z]", question)
    return [_norm(w) for w in words if len(w) >= 4 and _norm(w) not in GENERIC]


@cache
def _tasks(name: str) -> list[dict[str, Any]]:
    return yaml.safe_load(CORPORA[name].tasks.read_text())["tasks"]


@cache
def _page(name: str, page: str) -> str:
    from agentfleet_runtime.ingest.documents import html_to_text

    corpus: Corpus = CORPORA[name]
    return _norm(html_to_text((corpus.ensure() / page).read_text(encoding="utf-8")))


def stated_near(alt: str | float, terms: list[str], text: str) -> bool:
    spots = [i for t in terms for i in _where(t, text)]
    return any(abs(i - j) <= NEAR for i in _where(alt, text) for j in spots)


def test_at_least_150_questions_over_the_corpora() -> None:
    assert sum(len(_tasks(name)) for name in CORPORA) >= 150


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_every_task_names_its_part_and_both_parts_have_every_kind(name: str) -> None:
    raw = _tasks(name)
    assert [t["id"] for t in raw if t.get("part") not in PARTS] == []
    ts = load_taskset(CORPORA[name].tasks)
    kinds = {t.kind for t in ts.tasks}
    assert KINDS <= kinds and len(kinds) == 5
    for part in PARTS:
        assert {t.kind for t in ts.part(part).tasks} == kinds, part
    assert all(len(t.supporting) >= 2 for t in ts.tasks if t.kind == "multihop")


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_parts_share_no_supporting_page_and_no_fact(name: str) -> None:
    pages: dict[str, dict[str, str]] = {p: {} for p in PARTS}
    facts: dict[str, dict[str | float, str]] = {p: {} for p in PARTS}
    for t in _tasks(name):
        for s in t.get("supporting") or []:
            pages[t["part"]][s] = t["id"]
        for f in t.get("facts") or []:
            for alt in _alternatives(f):
                facts[t["part"]][alt] = t["id"]
    dev, held = PARTS
    assert {s: (pages[dev][s], pages[held][s]) for s in pages[dev].keys() & pages[held].keys()} == {}
    assert {a: (facts[dev][a], facts[held][a]) for a in facts[dev].keys() & facts[held].keys()} == {}


def question_leaks(tasks: list[dict[str, Any]]) -> list[tuple[str, str | float]]:
    """(task id, fact form) for each fact a task's own question states."""
    leaks = []
    for t in tasks:
        question = _norm(t["question"])
        leaks += [(t["id"], a) for f in t.get("facts") or [] for a in _alternatives(f) if _where(a, question)]
    return leaks


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_no_question_contains_its_own_facts(name: str) -> None:
    assert question_leaks(_tasks(name)) == []


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_facts_are_stated_on_their_pages_near_what_is_asked(name: str) -> None:
    """Each fact has a form that one of its supporting pages states within NEAR characters of a term
    of the question (the setting, function or command asked about), as the ingestion extracts the
    page. Wrong values are only checked to be different from the facts."""
    missing = []
    for t in _tasks(name):
        terms = _terms(t["question"])
        texts = [_page(name, s) for s in t.get("supporting") or []]
        for f in t.get("facts") or []:
            if not any(stated_near(a, terms, text) for a in _alternatives(f) for text in texts):
                missing.append((t["id"], f))
        right = {a for f in t.get("facts") or [] for a in _alternatives(f)}
        assert not right & {a for w in t.get("wrong") or [] for a in _alternatives(w)}, t["id"]
    assert missing == []


def test_unanswerable_questions_name_no_page() -> None:
    for name in CORPORA:
        unanswerable = [t for t in _tasks(name) if t["kind"] == "unanswerable"]
        named = [t["id"] for t in unanswerable if t.get("supporting") or t.get("facts")]
        assert named == []


ABSENT = "absent:"


def absent_terms(task: dict[str, Any]) -> list[str]:
    """The things an unanswerable question's notes say no page mentions ("absent: a, b")."""
    notes = str(task.get("notes") or "")
    return [x.strip() for x in notes[len(ABSENT) :].split(",") if x.strip()] if notes.startswith(ABSENT) else []


def pages_mentioning(corpus: Corpus, term: str) -> list[str]:
    """Every file of the corpus whose raw HTML holds ``term`` (case-insensitive): markup, code and
    examples included, so that a recipe or a changelog entry counts as a mention."""
    low = term.lower()
    return sorted(
        p.name
        for p in corpus.ensure().rglob("*")
        if p.is_file() and low in p.read_text(encoding="utf-8", errors="replace").lower()
    )


@pytest.mark.parametrize("name", sorted(CORPORA))
def test_unanswerable_questions_ask_about_things_no_page_mentions(name: str) -> None:
    """The fresh set's declines rest on the thing asked about being absent from every page, which
    its notes name; each named thing is in its own question."""
    fresh = [t for t in _tasks(name) if t["id"].startswith("fresh2-") and t["kind"] == "unanswerable"]
    assert len(fresh) == 4
    for t in fresh:
        terms = absent_terms(t)
        assert terms and all(x.lower() in t["question"].lower() for x in terms), t["id"]
        assert {x: pages_mentioning(CORPORA[name], x) for x in terms} == {x: [] for x in terms}, t["id"]


def test_a_mentioned_term_is_found() -> None:
    # The check can fail: a term that is on a page (itertools' recipes define batched()) is found.
    assert "itertools.html" in pages_mentioning(CORPORA["python"], "batched")
    assert absent_terms({"notes": "absent: a, b.c"}) == ["a", "b.c"] and absent_terms({"notes": "x"}) == []
