"""Scoring an agent's answers against a task set. Pure: no I/O, no model.

- success: an answer states every expected fact (normalised text, or numbers compared as numbers);
  for a question the documents do not answer, the answer declines.
- grounded (answerable questions only): the answer cites, every citation names a document whose
  passages the task (or one of its sub-agents) actually retrieved, and every fact the answer states
  is in one of the cited, retrieved passages. No citation, a citation of something never
  retrieved, or a cited passage without the fact: ungrounded, with the reason.
- recall@k (answerable questions only): the share of the supporting documents among the first k
  passages of any search the task tree made.
A citation names a document (``sql-vacuum.html``; ``sql-vacuum.html#3`` names the same document):
the retrieval tool shows the model each passage's document, so that is what it can cite.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from agentfleet.evaluation.taskset import EvalTask, Fact

_TRANSLATE = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u00a0": " "})
_MARKUP = re.compile(r"[`*_]+")
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|(?<![\w.])\.\d+")
# How agents say that the documents do not answer a question.
_DECLINE = re.compile(
    r"(?i)\b(?:not (?:mentioned|documented|covered|specified|stated|described|found|included|available|present|provided|in the (?:manual|documentation|documents|passages))"
    r"|(?:does|do|did)(?: not|n't) (?:say|mention|specify|state|describe|document|cover|contain|provide|include|answer)"
    r"|no (?:information|mention|such|setting|parameter|documentation|details?|answer)"
    r"|(?:cannot|can't|could not|couldn't|unable to) (?:find|answer|determine|locate)"
    r"|i (?:do not|don't) know|unknown to the (?:manual|documentation)|there is no)\b"
)


def normalise(text: str) -> str:
    """Lower case, one kind of quote and dash, no markdown emphasis, single spaces."""
    t = unicodedata.normalize("NFKC", text or "").translate(_TRANSLATE)
    t = _MARKUP.sub("", t)
    return " ".join(t.lower().split())


def numbers_in(text: str) -> list[float]:
    out = []
    for m in _NUMBER.finditer(unicodedata.normalize("NFKC", text or "")):
        out.append(float(m.group(0).replace(",", "")))
    return out


def _contains(haystack: str, needle: str) -> bool:
    """``needle`` in ``haystack`` (both normalised) not inside a longer word: "on" is not in "one"."""
    n = normalise(needle)
    if not n:
        return False
    return re.search(r"(?<![a-z0-9])" + re.escape(n) + r"(?![a-z0-9])", haystack) is not None


def fact_stated(fact: Fact, text: str) -> bool:
    norm = normalise(text)
    if any(_contains(norm, t) for t in fact.texts):
        return True
    if fact.numbers:
        found = numbers_in(text)
        return any(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) for a in fact.numbers for b in found)
    return False


def declined(answer: str) -> bool:
    return bool(_DECLINE.search(normalise(answer)))


def same_document(cited: str, source: str) -> bool:
    """A citation names a retrieved passage's document: equal, or equal after the directory."""
    c = cited.split("#", 1)[0].strip().lstrip("./")
    s = source.strip().lstrip("./")
    return bool(c) and (c == s or c.rsplit("/", 1)[-1] == s.rsplit("/", 1)[-1])


@dataclass(frozen=True)
class Outcome:
    """What the task API reported for one task and its sub-agents."""

    task_id: str = ""
    status: str = ""
    reason: str = ""
    answer: str = ""
    error: str = ""
    citations: tuple[str, ...] = ()
    retrieved: tuple[dict[str, Any], ...] = ()  # the tree's passages: source, rank, text
    steps: int = 0  # the root task's model calls
    model_calls: int = 0  # the tree's
    tool_calls: dict[str, int] = field(default_factory=dict)
    sub_agents: int = 0
    tokens: int = 0
    cost: Decimal = Decimal(0)
    latency_seconds: float = 0.0
    judged: bool | None = None  # a judge model's verdict, when one is configured


@dataclass(frozen=True)
class TaskScore:
    task: EvalTask
    outcome: Outcome
    success: bool
    grounded: bool | None
    recall: float | None
    why: str  # one line: what failed, or "ok"


def recall_at(task: EvalTask, retrieved: Iterable[dict[str, Any]], k: int) -> float | None:
    if task.expect == "decline" or not task.supporting:
        return None
    top = [p.get("source", "") for p in retrieved if int(p.get("rank", 1)) <= k]
    hit = sum(1 for doc in task.supporting if any(same_document(doc, s) for s in top))
    return hit / len(task.supporting)


def groundedness(task: EvalTask, o: Outcome) -> tuple[bool | None, str]:
    if task.expect == "decline":
        return None, "not scored: the question expects a decline"
    if not o.citations:
        return False, "no citation"
    cited: list[dict[str, Any]] = []
    for c in o.citations:
        passages = [p for p in o.retrieved if same_document(c, str(p.get("source", "")))]
        if not passages:
            return False, f"cites {c}, which the task never retrieved"
        cited += passages
    stated = [f for f in task.facts if fact_stated(f, o.answer)]
    if not stated:
        return False, "states none of the expected facts: no claim to check against the cited passages"
    for f in stated:
        if not any(fact_stated(f, str(p.get("text", ""))) for p in cited):
            return False, f"no cited passage contains {f.describe()!r}"
    return True, "ok"


def score(task: EvalTask, o: Outcome, k: int = 5) -> TaskScore:
    if o.status != "done":
        ok, why = False, f"task {o.status or 'unknown'}: {o.reason or o.error or 'no answer'}"
    elif task.expect == "decline":
        ok = declined(o.answer)
        why = "ok" if ok else "answered a question the documents do not answer"
    else:
        missing = [f.describe() for f in task.facts if not fact_stated(f, o.answer)]
        ok = not missing
        why = "ok" if ok else "missing " + "; ".join(repr(m) for m in missing)
    grounded, gwhy = groundedness(task, o)
    if ok and grounded is False:
        why = f"correct but ungrounded: {gwhy}"
    elif not ok and grounded is False and gwhy != "states none of the expected facts: no claim to check against the cited passages":
        why = f"{why}; {gwhy}"
    return TaskScore(task, o, ok, grounded, recall_at(task, o.retrieved, k), why)


# --- summaries ------------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100): a value that occurred, never an interpolation."""
    if not values:
        return None
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def _rate(flags: Iterable[bool | None]) -> float | None:
    vals = [f for f in flags if f is not None]
    return sum(vals) / len(vals) if vals else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(scores: Sequence[TaskScore], k: int = 5) -> dict[str, Any]:
    outs = [s.outcome for s in scores]
    lat = [o.latency_seconds for o in outs]
    kinds: dict[str, list[TaskScore]] = {}
    for s in scores:
        kinds.setdefault(s.task.kind, []).append(s)
    tools: Counter[str] = Counter()
    for o in outs:
        tools.update(o.tool_calls)
    n = len(scores)
    cost = sum((o.cost for o in outs), Decimal(0))
    recalls = [s.recall for s in scores if s.recall is not None]
    return {
        "tasks": n,
        "success": _rate(s.success for s in scores),
        "grounded": _rate(s.grounded for s in scores),
        "recall": _mean(recalls),
        "recallK": k,
        "judged": _rate(o.judged for o in outs),
        "stepsPerTask": _mean([o.steps for o in outs]),
        "modelCallsPerTask": _mean([o.model_calls for o in outs]),
        "toolCallsPerTask": _mean([sum(o.tool_calls.values()) for o in outs]),
        "toolCalls": dict(sorted(tools.items())),
        "subAgentsPerTask": _mean([o.sub_agents for o in outs]),
        "tasksThatSearched": sum(1 for o in outs if o.retrieved),
        "answersWithCitation": sum(1 for o in outs if o.citations),
        "tokensPerTask": _mean([o.tokens for o in outs]),
        "costPerTask": str((cost / n).quantize(Decimal("1e-9")).normalize()) if n else None,
        "latencyP50Seconds": percentile(lat, 50),
        "latencyP95Seconds": percentile(lat, 95),
        "endReasons": dict(Counter(o.reason or o.status for o in outs).most_common()),
        "byKind": {
            kind: {
                "tasks": len(ss),
                "success": _rate(s.success for s in ss),
                "grounded": _rate(s.grounded for s in ss),
                "recall": _mean([s.recall for s in ss if s.recall is not None]),
            }
            for kind, ss in sorted(kinds.items())
        },
    }


COMPARED = (
    "success",
    "grounded",
    "recall",
    "stepsPerTask",
    "modelCallsPerTask",
    "toolCallsPerTask",
    "subAgentsPerTask",
    "latencyP50Seconds",
    "latencyP95Seconds",
    "costPerTask",
)


def deltas(base: dict[str, Any], other: dict[str, Any]) -> dict[str, float | None]:
    """other - base for each compared figure (None where either is missing)."""
    out: dict[str, float | None] = {}
    for key in COMPARED:
        a, b = base.get(key), other.get(key)
        out[key] = None if a is None or b is None else float(b) - float(a)
    return out
