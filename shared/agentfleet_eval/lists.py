"""Enumerations in an answer: whether a value is stated as one short item of a list of candidates
("It is one of: a, b, c, d, e"), read with claims.py's Reading. Pure: no I/O, no model.

scoring.py fails an answer that states a fact only as an item of an enumeration of LIST_ITEMS or more
candidates: a list of guesses leaves the choice to the user, whatever the kinds of the other guesses.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agentfleet_eval.claims import Claim, FactLike, Reading, sentence_at

# scoring.py's threshold: an enumeration this long is a list of candidates.
LIST_ITEMS = 5

# An enumeration's items: split at commas, semicolons, colons, "or", "and" and slashes.
_ITEM = re.compile(r"(?:(?!,|;|:\s|\sor\s|\sand\s|/).)+")
SHORT_ITEM_WORDS = 4
# A fact's own words are one item, joined at the separators they hold: a URL or a path
# ("https://docs.python.org/3/library/webbrowser", 5 items at its slashes) or a value that is itself a
# list ("(host, port, flowinfo, scope_id)", 4 at its commas) made a right answer a list of candidates.
_IN_ITEM = re.compile(r"[,;/]|:(?=\s)|\s(?=(?:or|and)\s)")
# A relative clause after a value says something of it ("The default is 90, which applies to tables,
# indexes, sequences, views and materialized views"): its items are no candidates beside the value,
# unless one of them is a value of the same kind ("16, which could also be 8, 32 or 64").
_RELATIVE = re.compile(r"\s*(?:which|that|who|whose|where)\b")
# A lead-in before a sentence's first item ("It is one of pg_monitor, 16, 5min, true, fast."; "The manual says it is
# pg_monitor, ..."): the item is what follows the lead-in's last verb or "one of", so that a long lead-in
# does not hide the first candidate of a list and take it below LIST_ITEMS.
_LEAD_IN = re.compile(
    r".*\b(?:is|are|was|were|be|equals?|includes?|including|either|(?:one|any|each|some) of|such as)\s+"
)
# A clause's words: a value after one of them in its own item is asserted by that clause.
_CLAUSE = re.compile(
    r"\b(?:is|are|was|were|be|been|being|has|have|had|does|do|did|can|could|will|would|shall|should|may|might"
    r"|must|that|which|who|whose|where|when|it|they|this|these|you|we)\b"
)
# A word as prose writes it ("tables", "Materialized", "don't"); any other token is a name or code.
_WORD = re.compile(r"[\w.%-]+")
_PLAIN = re.compile(r"[A-Za-z][a-z]*(?:['-][a-z]+)*")


def _coded(raw: str) -> bool:
    """Whether ``raw`` holds a name or code value (SIGINT, pg_monitor, decimal.Decimal, <console>)."""
    tokens = (t.strip(".,;:!?()'\"") for t in raw.split())
    return any(t and not _PLAIN.fullmatch(t) and re.search(r"[A-Za-z]", t) for t in tokens)


@dataclass(frozen=True)
class Known:
    """What an enumeration may hold besides guesses: the parts of the fact's own value, the question's
    own words, and where the task's facts are stated. An item made of these is no candidate."""

    parts: frozenset[str] = frozenset()  # the parts of an expected value that has several: "column1", "column2"
    asked: str = ""  # the question's words, one space apart: "the signed short" is a phrase of it
    answers: tuple[tuple[int, int], ...] = ()  # spans of the task's other facts' claims in the answer
    stated: tuple[tuple[int, int], ...] = ()  # spans of every fact's claims, this fact's included


NOTHING_KNOWN = Known()


def _bare(text: str) -> str:
    """An item as a value: without the quotes, brackets, stops and spaces around it."""
    return text.strip(" \t.,;:!?'\"`()[]{}")


def known(r: Reading, question: str, fact: FactLike, facts: Sequence[FactLike]) -> Known:
    """What the answer ``r`` may enumerate beside ``fact``'s value without guessing (see Known)."""
    split = [re.split(r"[,;/]|\s(?:or|and)\s", t.lower()) for t in fact.texts]
    parts = frozenset(_bare(p) for pieces in split if len(pieces) > 1 for p in pieces)
    claims = [(g, c) for g in facts for c in r.claims(g) if not c.negated]
    return Known(
        parts=parts,
        asked=" " + " ".join(_WORD.findall(question.lower())) + " ",
        answers=tuple((c.start, c.end) for g, c in claims if g is not fact),
        stated=tuple((c.start, c.end) for _, c in claims),
    )


def list_sizes(r: Reading, claims: Sequence[Claim], seen: Known) -> list[int]:
    """listed() of each claim: how many candidates the enumeration holding it has (0: none)."""
    return [listed(r, c, seen) for c in claims]


def _no_candidate(text: str, part: bool, seen: Known) -> bool:
    """Whether an item of an enumeration is no guess: when the claim is itself a part of the expected
    value ("column1" of "column1, column2"), another part of it ("column2"); or a phrase of the
    question, two words or more ("the signed short" of a comparison of the signed short and the signed
    long long; a single word, "none" of "if none is given", may still be a guess)."""
    if part and _bare(text) in seen.parts:
        return True
    said = _WORD.findall(text)
    return len(said) > 1 and f" {' '.join(said)} " in seen.asked


def listed(r: Reading, claim: Claim, seen: Known = NOTHING_KNOWN) -> int:
    """How many candidates the enumeration holding the claim has, the claim's own item included,
    when the claim is one of them; 0 when it stands in a sentence or a clause of its own.

    A candidate is any other item of the enumeration, short or long, of whatever kind: a number, a
    name, a tuple, a symbol, a phrase. The items of one of the task's other answers (``seen.answers``: spans of its
    other facts' claims) are one item: "wal_level must be logical, and it publishes insert, update,
    delete, truncate" lists one fact beside another, not five candidates. The other parts of the expected
    value and the question's own phrases are none (``seen``: Known, _no_candidate)."""
    start, end = sentence_at(r.low, claim.start)
    text, items = _sentence_items(r, claim, start, end)
    spans = _spans(text, _before_the_clause(r, claim, items, seen), start)
    a, b = claim.start - start, claim.end - start
    inside = a + 1 if b - a > 1 else a  # "/usr/local/pgsql": its first slash starts no item
    own = next(((s, e) for s, e in spans if s <= inside < e), None)
    if own is None:
        return 0
    others = _candidates(r, claim, seen, start, text, spans, own)
    if _stated(text, own, a, b, others):
        return 0
    return 1 + len(others)


def _sentence_items(r: Reading, claim: Claim, start: int, end: int) -> tuple[str, list[tuple[int, int]]]:
    """The claim's sentence (separators inside the claim's own value blanked) and its items' spans."""
    text = r.low[start:end]
    a, b = claim.start - start + 1, claim.end - start - 1  # inside it: "/tmp" still starts no item
    text = text[:a] + _IN_ITEM.sub(lambda m: "_" * len(m.group()), text[a:b]) + text[b:]
    return text, [(start + m.start(), start + m.end()) for m in _ITEM.finditer(text)]


def _before_the_clause(r: Reading, claim: Claim, items: list[tuple[int, int]], seen: Known) -> list[tuple[int, int]]:
    """The items up to a relative clause after the claim ("..., which ..."), unless the clause holds
    a competing value of the claim's kind."""
    k = next((i for i, (s, e) in enumerate(items) if s <= claim.start < e), len(items))
    clause = next((j for j in range(k + 1, len(items)) if _RELATIVE.match(r.low, items[j][0])), len(items))
    alike = _alike(r, claim)
    # A value of the claim's kind after "which" is a competitor unless it is a fact's own value or a
    # name the question gives ("('/', '/RPC2'), which means that XML-RPC requests will be accepted on
    # the root URL (/) and the /RPC2 path": XML-RPC and URL are the question's, /RPC2 the fact's).
    competing = [(s, e) for s, e in items[clause:] if not _overlaps(s, e, seen.stated) and not _asked(r.raw[s:e], seen)]
    if not any(alike(s, e) for s, e in competing):
        return items[:clause]  # "90, which applies to tables, indexes, ...": what 90 applies to
    return items


def _spans(text: str, items: list[tuple[int, int]], start: int) -> list[tuple[int, int]]:
    """The items' spans in the sentence. Only the sentence's first item has a lead-in: a later long
    item is prose between the values ("..., and the PL/Perl setting ... before it is specialized for
    plperl or plperlu is plperl.on_init")."""
    return [
        _after_lead_in(text, s - start, e - start) if i == 0 else (s - start, e - start)
        for i, (s, e) in enumerate(items)
    ]


def _candidates(
    r: Reading,
    claim: Claim,
    seen: Known,
    start: int,
    text: str,
    spans: list[tuple[int, int]],
    own: tuple[int, int],
) -> list[tuple[int, int]]:
    """Every other item is a candidate, short or long and of whatever kind: a phrase ("same name as
    the current system user"), a symbol ("<@>", "''"), a tuple as much as a number or a name.
    Another fact's answer is one item, however many its own separators make ("insert, update,
    delete, truncate"): the items it overlaps count once, as the first of them."""
    held = [(s0 - start, e0 - start) for s0, e0 in seen.answers]
    part = _bare(r.low[claim.start : claim.end]) in seen.parts
    others: list[tuple[int, int]] = []
    answered: set[int] = set()
    for s, e in spans:
        if (s, e) == own or not text[s:e].strip(" \t.!?") or _no_candidate(r.low[start + s : start + e], part, seen):
            continue
        hit = next((i for i, (s0, e0) in enumerate(held) if s < e0 and s0 < e), None)
        if hit is None or hit not in answered:
            others.append((s, e))
        if hit is not None:
            answered.add(hit)
    return others


def _stated(text: str, own: tuple[int, int], a: int, b: int, others: list[tuple[int, int]]) -> bool:
    """The claim's own item is no candidate but a statement when the words around the value are
    many (its own words do not count: "number of unreachable objects found" is one value) or when
    its own clause asserts it ("..., before it is specialized for plperl or plperlu is
    plperl.on_init"), unless the other items are short candidates enough to be a list by themselves
    ("2, None, 'tab', a 2-tuple of empty strings")."""
    short = sum(1 for s, e in others if len(_WORD.findall(text[s:e])) <= SHORT_ITEM_WORDS)
    around = len(_WORD.findall(text[own[0] : a] + " " + text[b : own[1]]))
    asserted = own[0] < a and _CLAUSE.search(text[own[0] : a]) is not None
    return (around > SHORT_ITEM_WORDS or asserted) and short < LIST_ITEMS - 1


def _asked(raw: str, seen: Known) -> bool:
    """Whether every name or code in ``raw`` is one the question gives (and it holds one)."""
    tokens = (t.strip(".,;:!?()'\"`") for t in raw.split())
    coded = [t.lower() for t in tokens if t and not _PLAIN.fullmatch(t) and re.search(r"[A-Za-z]", t)]
    return bool(coded) and all(f" {t} " in seen.asked for t in coded)


def _overlaps(s: int, e: int, spans: Sequence[tuple[int, int]]) -> bool:
    return any(s < e0 and s0 < e for s0, e0 in spans)


def _after_lead_in(text: str, s: int, e: int) -> tuple[int, int]:
    """An item's span in ``text`` without its lead-in, where it is longer than a short item."""
    if len(_WORD.findall(text[s:e])) <= SHORT_ITEM_WORDS:
        return s, e
    m = _LEAD_IN.match(text, s, e)
    return (m.end(), e) if m else (s, e)


def _alike(r: Reading, claim: Claim) -> Callable[[int, int], bool]:
    """Whether a span holds a value of the claim's kind: a quantity for a quantity; a name, code or
    quantity for a name or code (SIGINT, pg_monitor, a lock mode); anything for words."""
    if any(q.start == claim.start and q.end == claim.end for q in r.quantities):
        return lambda s, e: any(s <= q.start < e and not (q.spelled and not q.dim) for q in r.quantities)
    if any(m.start <= claim.start < m.end for m in r.mentions) or _coded(r.raw[claim.start : claim.end]):
        return lambda s, e: _coded(r.raw[s:e]) or any(s <= x.start < e for x in [*r.mentions, *r.quantities])
    return lambda s, e: True
