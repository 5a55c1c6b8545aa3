"""Scoring an agent's answers against a task set. Pure: no I/O, no model.

- success: the answer states every expected fact as its answer to what was asked (claims.py
  reads quantities with their units, vocabulary values, negations and what each value is said
  of), and
  - negates none of them ("the statement is not executed"; a "not" that repeats the question's own
    condition, "when X is not passed", negates nothing);
  - states no competing value of a kind it asks for: another quantity of the same dimension,
    another value of the same vocabulary (lock modes, isolation levels, ...), and answers a
    yes/no question one way: not both "yes" and "no" (nor "yes or no"), not the fact's word both
    stated and negated, not "yes" where the fact answers no ("order=False") nor "no" where it
    answers yes;
  - says no fact of another thing the question asks about (values swapped between subjects);
  - states none of the task's ``wrong`` facts;
  - is no list: at most MAX_OTHER_VALUES values of kinds the question does not ask for, and each
    fact stated at least once outside an enumeration of LIST_ITEMS or more candidates, of whatever
    kind (lists.py: a duration among names, a tuple among phrases is a list all the same).
  - is not the retrieved passages copied under their number heads: an answer with two or more
    passage heads ("[1] (x.html, score 0.031)", "[1] [source: x]") at a line's start, most of whose
    words are the passages' own (runs of COPY_RUN words or more), leaves the reading to the user.
  A fact is never read inside a decline ("the documentation does not say" states no "does not").
  For a question the documents do not answer, the answer declines and asserts no value. The raw
  decision JSON stored as the answer is never a success, whatever value it holds.
  Values in the question itself (and version numbers) are never competing values.
- grounded (answerable questions only): the answer cites, every citation names a document whose
  passages the task (or one of its sub-agents) actually retrieved, and every fact the answer states
  is stated in the same sense by one of the cited, retrieved passages: the quantity with its unit,
  not negated, within NEAR characters of the thing asked (the fact's subject, else a setting the
  question names), on the thing's own page, or alone in its sentence on a page another retrieved
  chunk of which names the thing. No citation, a citation of something never retrieved, or a cited passage
  without the fact: ungrounded, with the reason.
- recall@k (answerable questions only): the share of the supporting documents among the first k
  passages of any search the task tree made.
A citation names a document (``sql-vacuum.html``; ``sql-vacuum.html#3`` names the same document):
the retrieval tool shows the model each passage's document, so that is what it can cite.
An optional judge model's verdict (``Outcome.judged``) is reported beside these scores, never
instead of them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from agentfleet_contract.percentiles import percentile

from agentfleet_eval.bounds import is_range_end, other_ends, range_end
from agentfleet_eval.claims import (
    Form,
    Reading,
    clean,
    echoes,
    elaborations,
    fact_stated,
    forms,
    identifiers_in,
    loose,
    names_number,
    negated,
    normalise,
    qualifiers,
    value_stated,
    words,
)
from agentfleet_eval.claims import numbers_in as numbers_in  # where callers found it before claims.py
from agentfleet_eval.lists import LIST_ITEMS, known, list_sizes
from agentfleet_eval.pages import page_of, siblings
from agentfleet_eval.subjects import context, subjects
from agentfleet_eval.taskset import EvalTask, Fact

# More values than this of kinds the question does not ask for make an answer a list of guesses.
MAX_OTHER_VALUES = 3
# How close (characters) a cited passage must state a fact to the thing asked: one settings entry
# of the PostgreSQL manual runs to 1,100 characters from its name to its default (effective_cache_size).
NEAR = 1200
# How agents say that the documents do not answer a question. The phrases are blanked before facts are
# read (without_declines); "there is no" only counts for declined(): "there is no RETURNING clause" answers.
_DECLINE_PHRASES = (
    r"not "
    r"(?:mentioned|documented|covered|specified|stated|described|found|included|available|present|provided|in the "
    r"(?:manual|documentation|documents|passages))"
    r"|(?:does|do|did)(?: not|n't) (?:say|mention|specify|state|describe|document|cover|contain|provide|include|answer)"
    r"|no (?:information|mention|such|setting|parameter|documentation|details?|answer|values?)"
    r"|(?:cannot|can't|could not|couldn't|unable to) (?:find|answer|determine|locate|give an? (?:\w+ )?answer)"
    r"|i (?:do not|don't) know|unknown to the (?:manual|documentation)"
)
_DECLINE = re.compile(rf"(?i)\b(?:{_DECLINE_PHRASES}|there is no)\b")
_DECLINE_PHRASE = re.compile(rf"(?i)\b(?:{_DECLINE_PHRASES})\b")
# A decline phrase inside a condition of the answer's own clause declines nothing: "when key is not
# specified, deque.sort() sorts ascending" asserts what the documents never say.
_CONDITION = re.compile(r"\b(?:if|when|whenever|unless)\b[^,;:.!?\n]*$")
# A value asserted in words: "the default ... is noeviction", "defaults to on".
_ASSERTED = re.compile(
    r"\b(?:default(?: [\w-]+){0,4} (?:is|was|would be)|defaults? to|is set to)\s+['\"]?([\w-]+(?:\.\d+)?)"
)
_NOT_A_VALUE = frozenset("no not none unknown undocumented unspecified a an the any".split())
_YES_NO_QUESTION = re.compile(r"^(?:is|are|does|do|did|can|could|should|will|would|has|have|was|were|may|must)\b")
_YES = re.compile(r"(?:^|[.!?;:]\s)yes\b", re.MULTILINE)
_NO = re.compile(r"(?:^|[.!?;:]\s)no\b(?=\s*[,.;:!]|\s+-|\s*$)", re.MULTILINE)
# Both polarities offered as one: "yes or no", "yes/no", "no or yes".
_YES_OR_NO = re.compile(r"\b(?:yes\s*(?:or|/|and)\s*no|no\s*(?:or|/|and)\s*yes)\b")
# The model's decision JSON ({"action": ..., "answer": ...}) stored as the answer text.
_RAW_DECISION = re.compile(r'^\s*\{\s*"(?:action|tool|answer)"\s*:')
# A passage's number head at a line's start, as the retrieval tool shows it ("[1] (x.html, score 0.031)")
# or as a small model rewrites it ("[1] [source: POSIX]"): the 0.5B's one-shot answer to the Python
# held-out's subprocess question was three passages copied under such heads, and it held the value.
_PASSAGE_HEAD = re.compile(r"(?m)^[ \t*_`>]*\[\d+\][ \t]*[\[(]")
# A run of this many words that a passage has too is the passage's own: shorter runs are phrases any
# answer shares with its source ("the default value of the parameter is").
COPY_RUN = 8
_WORD = re.compile(r"[a-z0-9_]+")


def without_declines(answer: str) -> str:
    """The answer (cleaned) with its decline phrases blanked: the "does not" of "the documentation
    does not say" and the "no" of "give no value" answer no yes/no question."""
    return _DECLINE_PHRASE.sub(lambda m: " " * len(m.group()), clean(answer))


def says_undocumented(answer: str) -> bool:
    """The answer says the documents do not answer: a decline phrase that no "if" or "when" of its
    own clause makes a condition."""
    text = normalise(answer)
    return any(not _CONDITION.search(text[: m.start()]) for m in _DECLINE.finditer(text))


def declined(answer: str, question: str = "") -> bool:
    """The answer says the documents do not answer, and asserts no value of its own."""
    return says_undocumented(answer) and not asserted_values(answer, question)


def asserted_values(answer: str, question: str = "") -> list[str]:
    """Values an answer asserts that its question does not contain: quantities (not versions, not a
    spelled number without a unit), vocabulary values, and "the default is X"."""
    a, q = Reading(answer), Reading(question)
    out = [
        a.low[x.start : x.end]
        for x in a.quantities
        if not (x.spelled and not x.dim) and not names_number(a.low, x) and not any(x.same(y) for y in q.quantities)
    ]
    out += [m.entry for m in a.mentions if m.entry not in {n.entry for n in q.mentions}]
    out += [m.group(1) for m in _ASSERTED.finditer(a.low) if m.group(1) not in _NOT_A_VALUE]
    return out


def copied_passages(answer: str, passages: Iterable[str]) -> bool:
    """The answer is passages copied under their number heads: two or more heads at a line's start,
    and at least half its words inside runs of COPY_RUN words that a passage has too. An answer that
    quotes the sentence it answers from, or lists its sources by number after answering, is not. Pure."""
    if len(_PASSAGE_HEAD.findall(answer)) < 2:
        return False
    words = _WORD.findall(_PASSAGE_HEAD.sub(" ", answer).lower())
    texts = [_WORD.findall(p.lower()) for p in passages]
    runs = {tuple(w[i : i + COPY_RUN]) for w in texts for i in range(len(w) - COPY_RUN + 1)}
    copied = set()
    for i in range(len(words) - COPY_RUN + 1):
        if tuple(words[i : i + COPY_RUN]) in runs:
            copied.update(range(i, i + COPY_RUN))
    return bool(words) and 2 * len(copied) >= len(words)


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
    first_answer: str = ""  # a cascade's first answer (the task API's firstAnswer), "" when none


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


@dataclass(frozen=True)
class Verdict:
    ok: bool
    why: str  # "ok", or every reason the answer is wrong


def judge_answer(task: EvalTask, answer: str) -> Verdict:
    """Whether ``answer`` answers ``task`` (see the module docstring); pure."""
    if task.expect == "decline":
        if declined(answer, task.question):
            return Verdict(True, "ok")
        values = asserted_values(answer, task.question)
        if values and says_undocumented(answer):
            return Verdict(False, f"declines but asserts {', '.join(map(repr, values[:3]))}")
        return Verdict(False, "answered a question the documents do not answer")
    echo = echoes(task.question)
    a, q = Reading(without_declines(answer), echo), Reading(task.question)
    own, named = subjects(task)
    ctx = context(task)  # the thing every fact is asked of: what a value is said of only failing a subject
    kinds = qualifiers(task.question, [*named, *ctx], keep=own)
    why: list[str] = []
    fact_forms = [g for f in task.facts for g in forms(f)]
    for f, subject in zip(task.facts, own, strict=True):
        claims = [c for c in a.claims(f) if not c.negated]
        if not claims:
            negated = any(c.negated for c in a.claims(f))
            why.append(("negates " if negated else "missing ") + repr(f.describe()))
            continue
        items = list_sizes(a, claims, known(a, task.question, f, task.facts))
        if all(n >= LIST_ITEMS for n in items):
            why.append(f"states {f.describe()!r} only in a list of {max(items)} candidates")
            continue
        said = [a.said_of(c, named, kinds) or a.said_of(c, ctx, kinds) for c in claims]
        if subject and subject not in said and "" not in said:
            why.append(f"states {f.describe()!r} of {next(x for x in said if x)}, not of {subject}")
        elif subject and any(x and x != subject for x in said):
            why.append(f"states {f.describe()!r} of {next(x for x in said if x and x != subject)} too")
    for w in task.wrong:
        if value_stated(w, answer, echo):  # "none" of "when none is specified" is no value
            why.append(f"states the wrong {w.describe()!r}")
    why += _competing(task, a, q, fact_forms)
    return Verdict(not why, "; ".join(why) or "ok")


def _competing(task: EvalTask, a: Reading, q: Reading, fact_forms: list[Form]) -> list[str]:
    """Values the answer states beside the expected ones: of an asked kind, or too many of others."""
    dims = {g.quantity.dim for g in fact_forms if g.quantity is not None}
    vocabs = {g.vocab for g in fact_forms if g.vocab}
    allowed = [*fact_forms, *(g for f in task.alongside for g in forms(f))]
    phrases = {g.phrase for g in allowed if g.phrase}
    asked, other = [], set()
    ends = other_ends(a, task.question, fact_forms)  # "greater than 0 and no more than 16,383"
    for x in a.quantities:
        if (x.spelled and not x.dim) or names_number(a.low, x) or negated(a.low, x.start, x.end, a.echoed):
            continue
        if (x.start, x.end) in ends:
            continue
        if any(g.quantity is not None and x.same(g.quantity) for g in allowed):
            continue
        if any(x.same(y) for y in q.quantities):
            continue
        if x.dim in dims:
            asked.append(a.low[x.start : x.end])
        else:
            other.add(x.key())
    question_entries = {m.entry for m in q.mentions}
    for m in a.mentions:
        if m.entry in phrases or m.entry in question_entries or negated(a.low, m.start, m.end, a.echoed):
            continue
        if m.vocab in vocabs:
            asked.append(m.entry)
        else:
            other.add("v:" + m.entry)
    # a name a value holds is that value's ("scope_id" of the fact "(host, port, flowinfo, scope_id)")
    names = set(identifiers_in(q.low)) | phrases | {n for p in phrases for n in identifiers_in(p)}
    other |= {"i:" + n for n in identifiers_in(a.low, elaborations(a, fact_forms)) if n not in names}
    why = [f"also states {', '.join(map(repr, dict.fromkeys(asked)))}"] if asked else []
    if _YES_NO_QUESTION.match(q.low):
        why += _polarity(task, a)
    if len(other) > MAX_OTHER_VALUES:
        why.append(f"states {len(other)} values the question does not ask for: a list, not an answer")
    return why


_NEGATION_WORD = re.compile(r"\b(?:not|cannot|can't|never|no|false)\b")


def _negative(f: Fact) -> bool:
    """A fact that answers "no": "no" is one of its alternatives, or every alternative is a negation
    ("cannot", "not MVCC-safe", "order=False")."""
    alts = forms(f)
    return bool(alts) and (
        any(g.phrase == "no" for g in alts) or all(g.phrase and _NEGATION_WORD.search(g.phrase) for g in alts)
    )


def _positive(f: Fact) -> bool:
    """A fact that answers "yes": "yes" is one of its alternatives."""
    return any(g.phrase == "yes" for g in forms(f))


def _polarity(task: EvalTask, a: Reading) -> list[str]:
    """A yes/no question is answered one way: not both "yes" and "no" (as sentences' first words or
    "yes or no"), not the fact's word both stated and negated ("stable ... not stable"), and not the
    polarity word opposite to the fact's ("No, it is stable" where the fact is "yes")."""
    yes, no = _YES.search(a.low), _NO.search(a.low)
    if (yes and no) or _YES_OR_NO.search(a.low):
        return ["answers both yes and no"]
    why = []
    for f in task.facts:
        worded = replace(f, texts=tuple(t for t in f.texts if normalise(t) not in ("yes", "no")))
        said = {c.negated for c in a.claims(worded)}
        if said == {True, False}:
            why.append(f"states {f.describe()!r} and negates it")
    if yes and any(_negative(f) for f in task.facts):
        why.append("answers yes where the fact is a negation")
    elif no and any(_positive(f) for f in task.facts):
        why.append("answers no where the fact is a yes")
    return why


def supports(
    task: EvalTask, fact: Fact, subject: str, passage: str, source: str = "", page: Sequence[str] = ()
) -> bool:
    """A passage states the fact in the same sense: not negated, and near the thing asked, or on the
    thing's own page (a module's or program's page states its facts far from the name in its heading:
    pg_surgery's heap_force_freeze entry never writes "pg_surgery"), or in a sentence that names
    nothing else while another retrieved chunk of its page (``page``) names the thing: a page names
    it once, and the chunk after its heading, table caption or signature states the value alone
    ("The default is spread.", under BASE_BACKUP's CHECKPOINT option). On the page of a sibling of
    the question's command (``pages.siblings``: CREATE SUBSCRIPTION's, asked of ALTER SUBSCRIPTION), the
    passage must name the question's command near the fact too."""
    r = Reading(passage, echoes(task.question))
    ends = is_range_end(subject)  # said of a range's end: the range says which
    names = [subject] if subject and not ends else identifiers_in(normalise(task.question))
    own_page = any(page_of(n, source) for n in names) if source else False
    on_page = bool(names) and any(words(*names).search(loose(normalise(t))) for t in page)
    others = siblings(task.question, source) if source else []  # another command's page: it must name ours
    return any(
        not c.negated
        and (not ends or range_end(r, c, subject))
        and (not names or own_page or r.near(c, names, NEAR) or (on_page and not r.names_before(c)))
        and (not others or r.near(c, others, NEAR))
        for c in r.claims(fact)
    )


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
    own, _ = subjects(task)
    echo = echoes(task.question)
    stated = [(f, s) for f, s in zip(task.facts, own, strict=True) if fact_stated(f, o.answer, echo)]
    if not stated:
        return False, NOTHING_TO_GROUND
    texts = [(str(p.get("text", "")), str(p.get("source", ""))) for p in cited]
    pages = _pages(o, {source for _, source in texts})
    for f, subject in stated:
        if not any(supports(task, f, subject, text, source, pages[source]) for text, source in texts):
            return False, f"no cited passage states {f.describe()!r}" + (f" of {subject}" if subject else "")
    return True, "ok"


def _pages(o: Outcome, sources: Iterable[str]) -> dict[str, list[str]]:
    """Each source's page: the texts of every passage the task retrieved from its document."""
    retrieved = [(str(p.get("source", "")), str(p.get("text", ""))) for p in o.retrieved]
    return {doc: [text for src, text in retrieved if same_document(doc, src)] for doc in sources}


COPIED_PASSAGES = "the answer is the retrieved passages copied under their numbers, not an answer"
NOTHING_TO_GROUND = "states none of the expected facts: no claim to check against the cited passages"


def score(task: EvalTask, o: Outcome, k: int = 5) -> TaskScore:
    if o.status != "done":
        ok, why = False, f"task {o.status or 'unknown'}: {o.reason or o.error or 'no answer'}"
    elif _RAW_DECISION.match(o.answer):
        # What the user reads is JSON, whatever value sits inside it (the leak of issue 38).
        ok, why = False, "the answer is the model's raw decision JSON"
    elif copied_passages(o.answer, (str(p.get("text", "")) for p in o.retrieved)):
        ok, why = False, COPIED_PASSAGES
    else:
        v = judge_answer(task, o.answer)
        ok, why = v.ok, v.why
    grounded, gwhy = groundedness(task, o)
    if ok and grounded is False:
        why = f"correct but ungrounded: {gwhy}"
    elif not ok and grounded is False and gwhy != NOTHING_TO_GROUND:
        why = f"{why}; {gwhy}"
    return TaskScore(task, o, ok, grounded, recall_at(task, o.retrieved, k), why)


# --- where a failure comes from -------------------------------------------------------------------

# The stages a failed task can have failed at, in the order they are checked: the first that
# explains the failure is its cause.
FAILURE_CAUSES = (
    "budget",  # a step, token, cost, time or context budget ended the task, or --task-timeout did
    "error",  # the task failed or died (a model call, a worker, the task API)
    "format",  # no answer text, the raw decision JSON stored as the answer, or the passages copied
    "notRetrieved",  # no passage the task saw is from a supporting page
    "passageMissed",  # a supporting page was found, but no passage seen states the fact
    "declined",  # a passage seen states every fact, and the answer declines anyway
    "misread",  # a passage seen states every fact, and the answer states another value
    "invented",  # the documents do not answer, and the answer asserts a value
)
_BUDGET_ENDS = frozenset(
    {"max_steps", "max_tokens", "timeout", "max_cost", "max_spend", "max_context", "harness_timeout"}
)


def _failed_facts(task: EvalTask, answer: str) -> list[int]:
    """The facts (indexes) the answer does not state or negates; all of them when it states each
    and fails for another reason (a competing value, a swap, a list)."""
    missing = [i for i, f in enumerate(task.facts) if not fact_stated(f, answer)]
    return missing or list(range(len(task.facts)))


def failure_cause(s: TaskScore) -> str | None:
    """Which stage a failed task failed at (one of FAILURE_CAUSES), None for a success. Pure.

    Retrieval is judged before reading: an answer can only be a misread when a passage the task saw
    (any rank, the whole tree's searches) states each fact it got wrong in the same sense as the
    grounding check reads it (``supports``)."""
    if s.success:
        return None
    o, task = s.outcome, s.task
    if o.reason in _BUDGET_ENDS or o.status == "timeout":
        return "budget"
    if o.status != "done":
        return "error"
    if not o.answer.strip() or _RAW_DECISION.match(o.answer) or s.why.startswith(COPIED_PASSAGES):
        return "format"
    if task.expect == "decline":
        return "invented"
    sources = {str(p.get("source", "")) for p in o.retrieved}
    if not any(same_document(d, src) for d in task.supporting for src in sources):
        return "notRetrieved"
    own, _ = subjects(task)
    seen = [(str(p.get("text", "")), str(p.get("source", ""))) for p in o.retrieved]
    pages = _pages(o, {src for _, src in seen})  # read as the grounding check reads them, page rule included
    failed = _failed_facts(task, o.answer)
    if not all(any(supports(task, task.facts[i], own[i], t, src, pages[src]) for t, src in seen) for i in failed):
        return "passageMissed"
    return "declined" if declined(o.answer, task.question) else "misread"


# --- summaries ------------------------------------------------------------------------------------


def _rate(flags: Iterable[bool | None]) -> float | None:
    vals = [f for f in flags if f is not None]
    return sum(vals) / len(vals) if vals else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _causes(scores: Sequence[TaskScore]) -> dict[str, int]:
    """Failed tasks per cause, in FAILURE_CAUSES order, causes with none left out."""
    n = Counter(failure_cause(s) for s in scores)
    return {c: n[c] for c in FAILURE_CAUSES if n[c]}


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
        "latencyP50Seconds": percentile(lat, 50, empty=None),
        "latencyP95Seconds": percentile(lat, 95, empty=None),
        "endReasons": dict(Counter(o.reason or o.status for o in outs).most_common()),
        "failureCauses": _causes(scores),
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
