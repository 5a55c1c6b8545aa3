"""A passage given in the answer's place. Pure: no I/O. Shared so that the runtime's answer check
(agentfleet_runtime.answering.answercheck, which sends such an answer back) and `agentfleet eval`'s
report (agentfleet_client.evaluation.report, which names such a failure ``passageAsAnswer``) read an
answer the same way.

A small model shown numbered passages ("[3] (asyncio-eventloop.html, score 0.030)") sometimes answers
with the passage itself: "The function is [3] (asyncio-eventloop.html, score 0.030)", or "... its
lexemes is [source: textsearch-controls.html, score 0.030]." (a PostgreSQL fresh-c task's answer,
which named no function). A value check finds nothing to hold against it, and the user reads a rank
and a score where the answer belongs.
"""

from __future__ import annotations

import re

SOURCES_RX = re.compile(r"^\s*Sources?:.*$", re.M | re.I)  # a "Sources: a.html, b.html" line
TAG_RX = re.compile(r"\[[^\]\n]*\]")  # [source: x.html], or the [x.html] a small model writes instead
# A passage's head line, copied whole: the runtime cites it as [source: NAME] after what the answer states.
PASSAGE_ECHO = re.compile(r"\[\d+\]\s*\(([^()\n,]+),\s*score\s*-?[\d.]+\)")
# A passage's number (with its head line), a source tag, or a score.
_PASSAGE_REF = re.compile(r"\[\d+\](?:\s*\([^()\n]*\))?|\[\s*sources?\s*:[^\]\n]*\]|\bscore:?\s*-?\d*\.\d+", re.I)
# What asks for the answer right before the passage: a copula, a verb naming it, a colon.
_ASKS = re.compile(
    r"(?:\b(?:is|are|was|were|be|use|uses|call|calls|called|named|returns?|gives?|see)|[:=])[\s*_`\"']*$", re.I
)
# "[source: [1]]": the colon is a citation's label, and what follows it is the citation (the Python
# held-out's py-default-random-period, a right first answer). "The source of this information is
# [source: x]" names where, after the answer.
_CITE_LABEL = re.compile(
    r"\b(?:sources?|citations?|cited?|references?)(?:\s*:|\b[\w\s]{0,30}\b(?:is|are))[\s\[(]*$", re.I
)


def citation_in_place(answer: str) -> bool:
    """Whether an answer gives a passage's number, head line, source tag or score where the answer
    belongs: right after what asks for it ("is [3]", "Answer: [3] (x.html, score 0.030)"), or as all
    it says."""
    body = SOURCES_RX.sub("", answer)
    for m in _PASSAGE_REF.finditer(body):
        before = body[: m.start()].rstrip()
        if (_ASKS.search(before) and not _CITE_LABEL.search(before)) or not before.strip(" \t\n*_`\"'"):
            return True
    rest = _PASSAGE_REF.sub("", TAG_RX.sub("", body)).strip(" \t\n.,;*_`\"'")
    return bool(body.strip()) and not rest
