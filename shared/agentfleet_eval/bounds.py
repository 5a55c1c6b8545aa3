"""Ranges and bounds a text states, read with claims.py's quantities. Pure: no I/O, no model.

- A fact said of a range's end (a question's "lowest", "largest") is that end of a range a passage
  states ("must be in the range 37 through 32,767"): ``is_range_end`` and ``range_end``.
- A bound pair states two ends at once ("greater than 0 and no more than 16,383", "between 1 and
  100", "from 1 to 16383"): when the question asks for one end and the fact is that end, the other end
  is part of how the value is stated, not a competing value (``other_ends``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from agentfleet_eval.claims import Claim, Form, Quantity, Reading

# A fact said of a range's end ("the lowest and the highest frequency that winsound.Beep() accepts"): the
# documentation states it as one end of a range, "must be in the range 37 through 32,767", "int in
# range from -2147483648 to 2147483647", and never writes "lowest" near it.
_LOWER_END = frozenset("lowest smallest minimum min least".split())
_UPPER_END = frozenset("highest largest maximum max greatest".split())
_RANGE_WORD = re.compile(r"\b(?:range|between|from)\b[^.;\n]{0,24}$")
# Between a range's two ends: "to", "through", "thru", ".."; and "and", "-" (which _pair reads as a
# range only after "between", "from" or "range").
_TO_WORDS, _AND_WORDS = r"to|through|thru|\.\.", r"and|-|–"
_RANGE_TO = rf"\s*(?:{_TO_WORDS}|{_AND_WORDS})\s*"
_RANGE_NUMBER = r"[-+−]?\d[\d,._]*"


def is_range_end(subject: str) -> bool:
    """Whether a fact's subject is a range's end ("lowest", "largest"), which the range's order says."""
    return subject in _LOWER_END or subject in _UPPER_END


def range_end(r: Reading, c: Claim, subject: str) -> bool:
    """Whether the claim is the lower (``subject`` a word like "lowest") or upper ("highest") end of a
    range the passage states: "range 37 through 32,767", "between 1 and 100", "from -5 to 5"."""
    if subject in _LOWER_END:
        after = re.match(_RANGE_TO + _RANGE_NUMBER, r.low[c.end :])
        return after is not None and _RANGE_WORD.search(r.low[max(0, c.start - 40) : c.start]) is not None
    if subject in _UPPER_END:
        before = re.search(_RANGE_NUMBER + _RANGE_TO + r"$", r.low[max(0, c.start - 60) : c.start])
        if before is None:
            return False
        at = max(0, c.start - 60) + before.start()
        return _RANGE_WORD.search(r.low[max(0, at - 40) : at]) is not None
    return False


# The words by which a question asks for one end of what a value may be: "What is the largest position
# value ...", "the maximum precision", "the lower limit".
_ASKS_LOWER = _LOWER_END | {"lower", "fewest", "shortest"}
_ASKS_UPPER = _UPPER_END | {"upper", "biggest", "longest", "most", "limit"}
# A bound: "no more than", "greater than or equal to", "at least", "up to", "<=".
_BOUND = (
    r"(?:(?:no|not)\s+)?(?:more|less|greater|fewer|larger|smaller|higher|lower|bigger|longer|shorter)\s+than"
    r"(?:\s+or\s+equal\s+to)?|at\s+(?:most|least)|up\s+to|above|below|under|over|[<>]=?|≤|≥"
)
# Between the two ends: "1 to 16383", "1 through 16383", "1..16383"; "1 and 100" and "1 - 100" only after
# "between", "from" or "range" (else "1 and 100" lists two values); "greater than 0 and no more than 16,383"
# with a bound before each end.
_TO = re.compile(rf"\s*(?:{_TO_WORDS})\s*")
_AND = re.compile(rf"\s*(?:{_AND_WORDS})\s*")
_RANGE_BEFORE = re.compile(r"\b(?:between|from|range)\s*$")
_BOUND_BEFORE = re.compile(rf"(?:{_BOUND})\s*$")
_BOUND_AND = re.compile(rf"\s*,?\s*(?:and|but|,)\s+(?:{_BOUND})\s*")


def _pair(low: str, first: Quantity, second: Quantity) -> bool:
    """Whether two quantities, in this order, are the two ends of one stated range or bound pair."""
    if first.dim != second.dim and first.value != 0 and second.value != 0:
        return False
    gap, before = low[first.end : second.start], low[max(0, first.start - 40) : first.start]
    if _TO.fullmatch(gap):
        return True
    if _AND.fullmatch(gap):
        return _RANGE_BEFORE.search(before) is not None
    return _BOUND_AND.fullmatch(gap) is not None and _BOUND_BEFORE.search(before) is not None


def other_ends(a: Reading, question: str, fact_forms: Iterable[Form]) -> set[tuple[int, int]]:
    """The spans of quantities in ``a`` that are the other end of a bound pair whose asked end is a fact:
    asked "What is the largest position value ...", the answer "greater than 0 and no more than 16,383"
    states 16,383 as the largest, and 0 is the bound's other end, not a second candidate (both passes of
    the PostgreSQL fresh-e run, read right by a blind reader). A question that asks for no end ("What is
    the default ...") excuses nothing: "between 8 and 16" is then a hedge between two values."""
    asked = set(re.findall(r"[a-z]+", question.lower()))
    lower, upper = bool(asked & _ASKS_LOWER), bool(asked & _ASKS_UPPER)
    facts = [g.quantity for g in fact_forms if g.quantity is not None]
    qs = sorted(a.quantities, key=lambda q: q.start)
    out: set[tuple[int, int]] = set()
    for first, second in zip(qs, qs[1:], strict=False):
        if not _pair(a.low, first, second):
            continue
        low, high = sorted((first, second), key=lambda q: q.value)
        if upper and any(high.same(f) for f in facts):
            out.add((low.start, low.end))
        if lower and any(low.same(f) for f in facts):
            out.add((high.start, high.end))
    return out
