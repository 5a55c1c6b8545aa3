"""Every value an answer states cited where it is stated (issue 59's grounding goal). Pure.

A small model cites the page it read most (or all five it was shown) and states a value from
another: "three workers ... [source: routine-vacuuming.html]" where only
runtime-config-autovacuum.html says "The default is three", or a tool name only its own page holds.
The runtime has the passages at hand: each value and code name the answer states gets the document
of the passage that states it nearest the answer's own words, unless a cited one does as well.
Only retrieved documents are ever added. What the model cited stays, except, on the first answer
(whose passages are all at hand), a document the task never retrieved; a value no passage states is
the answer check's business (answercheck.py), not the citations'.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from agentfleet_runtime.answering.answercheck import (
    CITATION_RX,
    NUMBER_WORD_RX,
    NUMBER_WORDS,
    QUANTITY_RX,
    SOURCES_RX,
    TAG_RX,
    Quantity,
    answer_names,
    number_words,
    quantities,
    quoted,
    says_unanswered,
    supporting_sources,
)
from agentfleet_runtime.core.citations import cited_document, parse_citations

CLAIM_NEAR = 200  # characters either side of a value in a passage where the answer's words count
_KEYWORD = re.compile(r"[a-z][a-z0-9]{3,}")  # "_" splits: autovacuum_max_workers has the words "autovacuum", "workers"
_COMMON = frozenset(
    "that this with from have will when what which where there their they them then than also only does "
    "into each other some such more most must value values documentation passage source answer stated "
    "state said about used using been being were".split()
)
# Values a documentation page writes as words: SQL keywords in capitals ("VOLATILE", "PARALLEL UNSAFE",
# "NULLS LAST": PostgreSQL's answers are often these) and dot-files (".pg_service.conf"), which code names miss.
_KEYWORDS = re.compile(r"(?<![\w.])[A-Z]{2,}(?:[ _][A-Z]{2,})*(?![\w.])")
_DOT_FILE = re.compile(r"(?<![\w./])\.[A-Za-z_][\w.-]*[A-Za-z0-9]")
# An answer's clauses: "X is three, and Y takes SHARE" states two things, each with its own words.
_CLAUSE = re.compile(r"(?:[.;!?](?=\s|$)|\n|,?\s+(?:and|while|but|whereas)\s+)")


def _words(text: str) -> set[str]:
    """A text's content words, plurals folded ("workers" is "worker")."""
    return {w[:-1] if w.endswith("s") and len(w) > 4 else w for w in _KEYWORD.findall(text.casefold())} - _COMMON


@dataclass(frozen=True, slots=True)
class _Claim:
    text: str  # as the answer writes it
    quantity: Quantity | None = None  # a quantity (or a number word) is matched by value, the rest by text


def _claims(body: str, question: str) -> list[_Claim]:
    """The values and code names an answer states that the question does not: its quantities, its
    bare number words ("the default is three"), its quoted values, its code names, its keywords in
    capitals and its dot-files."""
    asked = quantities(question) + number_words(question)
    out: list[_Claim] = []
    clean = CITATION_RX.sub(" ", body)
    nums = quantities(body) + [
        Quantity(m.group(0), float(NUMBER_WORDS[m.group(1).lower()]))
        for m in NUMBER_WORD_RX.finditer(clean)
        if not quantities(clean[m.start() : m.end() + 12].split(".")[0])  # "five minutes" is a quantity already
    ]
    out += [_Claim(q.text, q) for q in nums if not any(q.same(k) for k in asked)]
    keywords = [m.group(0) for m in _KEYWORDS.finditer(clean) if len(m.group(0)) >= 4]
    words = [*quoted(body), *answer_names(body, question), *keywords, *_DOT_FILE.findall(clean)]
    out += [
        _Claim(w) for w in dict.fromkeys(w.removesuffix("()") for w in words) if w.casefold() not in question.casefold()
    ]
    return out


def _positions(claim: _Claim, text: str) -> list[int]:
    """Where a passage states the claim."""
    if claim.quantity is None:
        needle, hay = claim.text.casefold(), text.casefold()
        return [m.start() for m in re.finditer(re.escape(needle), hay)] if needle else []
    found = [
        m.start() for m in QUANTITY_RX.finditer(text) if any(claim.quantity.same(q) for q in quantities(m.group(0)))
    ]
    found += [
        m.start()
        for m in NUMBER_WORD_RX.finditer(text)
        if claim.quantity.same(Quantity("", float(NUMBER_WORDS[m.group(1).lower()])))
    ]
    return found


def _nearness(claim: _Claim, sentence: set[str], text: str) -> int:
    """How many of the words of the answer's clause stating the claim a passage has within
    CLAIM_NEAR characters of it; -1 where it does not state the claim."""
    best = -1
    for at in _positions(claim, text):
        best = max(best, len(sentence & _words(text[max(0, at - CLAIM_NEAR) : at + CLAIM_NEAR])))
    return best


def uncited_sources(
    answer: str, cited: Iterable[str], passages: Iterable[tuple[str, str]], question: str = ""
) -> list[str]:
    """The documents to add to an answer's citations so that every value it states is cited where a
    retrieved passage states it: for each value and code name, the source of the passage (of
    ``passages``: (source, text), best first) that states it with most of the answer sentence's
    words around it, where no cited passage states it as closely. Empty when the citations already
    cover what the answer states."""
    body = SOURCES_RX.sub("", TAG_RX.sub(" ", answer))
    shown, have = list(passages), {c.strip() for c in cited}
    clauses = _CLAUSE.split(body)
    add: list[str] = []
    for claim in _claims(body, question):
        said = next((c for c in clauses if claim.text in c), body)
        words = _words(said) - _words(claim.text)
        scored = [(_nearness(claim, words, text), -i, source) for i, (source, text) in enumerate(shown)]
        stating = [x for x in scored if x[0] >= 0]
        if not stating:
            continue  # the value check's business, not the citations'
        best = max(stating)
        covered = max((x[0] for x in stating if x[2] in have or x[2] in add), default=-1)
        if best[0] > covered and best[2] not in add:
            add.append(best[2])
    return add


def cite(answer: str, passages: Iterable[tuple[str, str]], question: str = "") -> str:
    """The answer citing every value it states where a retrieved passage states it: an uncited one
    first cites the passages holding its values (supporting_sources), then each value a cited
    passage does not state as closely gets its own passage's document (``uncited_sources``). A
    decline cites nothing."""
    if says_unanswered(answer):
        return answer
    shown = list(passages)
    cited = parse_citations(answer) or supporting_sources(answer, shown, question)
    return with_sources(answer, [*cited, *uncited_sources(answer, cited, shown, question)])


def _document(name: str) -> str:
    """A citation's or a passage's document, as the task API compares them: the file, without its
    directory or its passage number."""
    return cited_document(name.strip()).rsplit("/", 1)[-1]


def _spelling(name: str) -> str:
    """A document's name with its separators and case aside: pg_archivecleanup.html is pgarchivecleanup.html."""
    return re.sub(r"[^a-z0-9.]", "", name.lower())


def without_unretrieved(answer: str, sources: Iterable[str]) -> str:
    """The answer without the citations naming no document among ``sources`` (the task's retrieved
    ones): a small model cites a page it guesses from the question (plpgsql-do.html, where the
    search returned sql-do.html), and the task API would list a source the task never read. The
    citations kept move to one sources line; an answer citing only retrieved documents is returned
    as it is."""
    have = {_document(s) for s in sources}
    # A retrieved document named with its separators changed ("pg_archivecleanup.html" for the
    # retrieved pgarchivecleanup.html, a PostgreSQL fresh-e answer's running text) is that document:
    # the name is rewritten, else the task API would list a source the task never read.
    spelled = {_spelling(d): d for d in have}
    for c in parse_citations(answer):
        if _document(c) not in have and _spelling(_document(c)) in spelled:
            answer = re.sub(rf"(?<![\w/.-]){re.escape(c)}(?![\w-])", spelled[_spelling(_document(c))], answer)
    cited = parse_citations(answer)
    kept = [c for c in cited if _document(c) in have]
    if len(kept) == len(cited):
        return answer
    gone = set(cited) - set(kept)
    body = TAG_RX.sub(lambda m: "" if gone & set(parse_citations(m.group(0))) else m.group(0), answer)
    body = re.sub(r"[ \t]+([.,;])", r"\1", SOURCES_RX.sub("", body)).strip()
    return with_sources(body, kept)


_SOURCES_LINE = re.compile(r"\n\s*Sources?:[^\n]*\s*$", re.I)


def with_sources(answer: str, sources: Any) -> str:
    """The final answer text: the answer, then the sources it cites (one line, the eval harness
    and the demo report read it)."""
    cited = [s.strip() for s in sources if isinstance(s, str) and s.strip()] if isinstance(sources, list) else []
    cited = list(dict.fromkeys(cited))
    if not cited or all(s in answer for s in cited):
        return answer
    # One sources line: one the answer already ends with is replaced by the longer list.
    return f"{_SOURCES_LINE.sub('', answer).rstrip()}\n\nSources: {', '.join(cited)}"
