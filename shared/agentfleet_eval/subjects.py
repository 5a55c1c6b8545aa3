"""What a question's facts are said of: the subjects an answer's values are bound to. Pure: no I/O.

scoring.py reads which subject each stated value is said of (``claims.Reading.said_of``) against these:
a value said of another subject than its fact's is a swap.
"""

from __future__ import annotations

import re

from agentfleet_eval.claims import identifiers_in, loose, lower, normalise, words
from agentfleet_eval.taskset import EvalTask

CAPS = re.compile(r"\b[A-Z][A-Z_]{2,}(?: [A-Z][A-Z_]{2,})*\b")
# A name the question sets beside a fact's subject as another thing of the comparison: "Compare DELETE
# without a WHERE clause and TRUNCATE", "VACUUM or VACUUM FULL", "faster than DELETE".
_BESIDE = r"[^,;.?!:]{0,40}?\b(?:and|or|vs\.?|versus|than|with)\s+(?:the\s+|a\s+|an\s+|plain\s+)?"


def _beside(question: str, name: str, abouts: list[str]) -> bool:
    """Whether the question sets ``name`` beside one of ``abouts`` (either order), as things compared."""
    n, low = words(name).pattern, loose(lower(question))
    return any(
        re.search(n + _BESIDE + a, low) or re.search(a + _BESIDE + n, low) for a in (words(x).pattern for x in abouts)
    )


def rivals(question: str, abouts: list[str]) -> tuple[list[str], list[str]]:
    """The question's names in capitals, as (rivals, context).

    Rivals: names a value may be said of instead of its fact's subject: each name of a fact's
    ``about`` or a word of one, and each name the question sets beside one as another thing compared
    (DELETE in "Compare DELETE ... and TRUNCATE", TRUNCATE asked about).

    Context: the others, the thing every fact is asked of or a word the question uses on the way
    ("Which lock does the REINDEX command require by default, and which with its CONCURRENTLY option?",
    facts about "default" and CONCURRENTLY). A value is said of one only where its sentence names no
    rival: "REINDEX requires ACCESS EXCLUSIVE by default" says it of the default (a fresh-e writer's
    right answer, read as said of REINDEX), "REINDEX takes ACCESS EXCLUSIVE" of REINDEX."""
    own = {lower(a) for a in abouts}
    parts = {w for a in own for w in a.split()}
    out: tuple[list[str], list[str]] = ([], [])
    for m in CAPS.finditer(question):
        run = m.group(0)
        for w in (run, *run.split()):
            rival = _beside(question, run, abouts) or lower(w) in own or lower(w) in parts
            out[0 if rival else 1].append(w)
    return out


def _combined(question: str, names: list[str]) -> bool:
    """Whether the question joins two of ``names`` with "|", as one argument of flags OR'd together
    ("fcntl.lockf() called with LOCK_EX | LOCK_NB"): one thing asked of, not two compared."""
    low = lower(question)
    return any(
        re.search(words(a).pattern + r"\s*\|\s*" + words(b).pattern, low) for a in names for b in names if a != b
    )


def subjects(task: EvalTask) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(the subject each fact is said of, "" for none; every subject the question names).

    With ``about`` on a fact, the subjects are the abouts, the question's snake_case names and its
    names in capitals that rival an about (``rivals``); without, a question naming as many snake_case
    names as it has facts (two or more) binds them in order ("compare seq_page_cost and
    random_page_cost")."""
    names = identifiers_in(normalise(task.question))
    abouts = [f.about for f in task.facts if f.about]
    if abouts:
        caps, _ = rivals(task.question, abouts)
        everything = dict.fromkeys(x.lower() for x in [*abouts, *names, *caps])
        return tuple(f.about.lower() for f in task.facts), tuple(everything)
    if len(task.facts) >= 2 and len(names) == len(task.facts) and not _combined(task.question, names):
        return tuple(names), tuple(names)
    return tuple("" for _ in task.facts), ()


def context(task: EvalTask) -> tuple[str, ...]:
    """The question's names in capitals that are no fact's subject nor a rival of one (``rivals``), where
    facts name their subjects; lower case."""
    abouts = [f.about for f in task.facts if f.about]
    named = set(subjects(task)[1])
    ctx = rivals(task.question, abouts)[1] if abouts else []
    return tuple(dict.fromkeys(x.lower() for x in ctx if x.lower() not in named))
