"""Enumerations in an answer: whether a value is stated as one short item of a list of candidates
("It is one of: a, b, c, d, e"), read with claims.py's Reading. Pure: no I/O, no model.

scoring.py fails an answer that states a fact only as an item of an enumeration of LIST_ITEMS or more
short items: a list of guesses leaves the choice to the user.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from agentfleet_eval.claims import Claim, Reading, sentence_at

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
# A word as prose writes it ("tables", "Materialized", "don't"); any other token is a name or code.
_WORD = re.compile(r"[\w.%-]+")
_PLAIN = re.compile(r"[A-Za-z][a-z]*(?:['-][a-z]+)*")


def _coded(raw: str) -> bool:
    """Whether ``raw`` holds a name or code value (SIGINT, pg_monitor, decimal.Decimal, <console>)."""
    tokens = (t.strip(".,;:!?()'\"") for t in raw.split())
    return any(t and not _PLAIN.fullmatch(t) and re.search(r"[A-Za-z]", t) for t in tokens)


def listed(r: Reading, claim: Claim) -> int:
    """How many short items (a few words each) the enumeration holding the claim has, when the
    claim is one of them; 0 when it stands in a sentence of its own."""
    start, end = sentence_at(r.low, claim.start)
    text = r.low[start:end]
    a, b = claim.start - start + 1, claim.end - start - 1  # inside it: "/tmp" still starts no item
    text = text[:a] + _IN_ITEM.sub(lambda m: "_" * len(m.group()), text[a:b]) + text[b:]
    items = [(start + m.start(), start + m.end()) for m in _ITEM.finditer(text)]
    k = next((i for i, (s, e) in enumerate(items) if s <= claim.start < e), len(items))
    clause = next((j for j in range(k + 1, len(items)) if _RELATIVE.match(r.low, items[j][0])), len(items))
    alike = _alike(r, claim)
    if not any(alike(s, e) for s, e in items[clause:]):
        items = items[:clause]  # "90, which applies to tables, indexes, ...": what 90 applies to
    # Only the sentence's first item has a lead-in: a later long item is prose between the values
    # ("..., and the PL/Perl setting ... before it is specialized for plperl or plperlu is plperl.on_init").
    spans = [
        _after_lead_in(text, s - start, e - start) if i == 0 else (s - start, e - start)
        for i, (s, e) in enumerate(items)
    ]
    short = [(start + s, start + e) for s, e in spans if len(_WORD.findall(text[s:e])) <= SHORT_ITEM_WORDS]
    if not any(s <= claim.start < e for s, e in short):
        return 0
    return len(short)


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
