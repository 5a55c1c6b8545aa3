"""The answer-first stage of a task's opening (answerPolicy: answering.answerFirst and reread).

After searchFirst, one call without tools answers from those passages as one-shot RAG would. An
answer that passes its check ends the task. One that fails may be read again once (reread), and then
either the loop goes on with tools (escalate) or the task ends held to the passages. These are
functions of the TaskRun that runs them: they read its task, settings and steps, and set what the
loop's first step carries (``first_declined``, ``escalated``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from agentfleet_runtime.core import metrics, timeouts
from agentfleet_runtime.core.types import ModelReply, Step, Usage
from agentfleet_runtime.loop import answercheck, citing
from agentfleet_runtime.loop.decisions import Offer, repair_messages, with_sources
from agentfleet_runtime.model.wire import ContextOverflow
from agentfleet_runtime.tools.retrieval import format_passages, parse_passages, rag_messages

if TYPE_CHECKING:
    from agentfleet_runtime.loop.agent import TaskRun

log = logging.getLogger("agentfleet_runtime.loop.agent")  # the loop's logger: one task's lines in one stream

# A first answer that fails its check is read again once, over the same passages and without tools:
# in the Python dev part's run, 3 of the loop's 4 wins came from reading the same passages again
# (a right answer the first call had declined), and 114 of the loop's 130 follow-up passages repeated
# ones already shown (docs/results/2026-11-27-eval-python-dev.md), at 3,785 tokens an escalation.
# The reading is a fresh request: continuing the first one with its answer and the reason was tried
# and dropped, since shown its own decline the 1.5B said it again 9 times in 10
# (docs/results/2026-11-27-eval-python-reread.md).
#
# A first answer whose values no first passage holds may still be documented: the 1.5B's right values
# that the check refused (NNTP's port 119, bigint's 8 bytes, a UUID's 128 bits) are in the manuals,
# on pages the question's own words did not rank in the first five. The answer's own words are a
# search query no model call is needed to write (answering.verifySearch).

Search = Callable[[str], Awaitable[bool]]  # one search as a step without a model call (TaskRun's)


async def answer_first(run: TaskRun, search: Search | None = None) -> Step | tuple[Usage, float, list[dict[str, Any]]]:
    """One call after searchFirst, asked to answer from those passages as one-shot RAG is
    (answerPolicy: answering.answerFirst): the fleet's system prompt, the passages and the question,
    in plain text, with no tools and no decision protocol (the 1.5B, asked for a JSON decision here,
    copied whole passages into its answer). With answering.reread, an answer that fails its check
    is read again once, as a fresh request in the form named. Returns the final step when an answer
    passes the check (states only values the passages hold, does not say they lack the answer), or
    ends the task without the loop, else what the first step of the loop carries on with: the calls'
    usage and model time, and a turn that shows the model its answer and why the task goes on.
    With answering.verifySearch, ``search`` first looks for an answer's unheld values with the
    answer's own words; the answer ends the task when what it finds holds them."""
    seen = run.seen_outputs()
    shown = [(p["source"], p["text"]) for out in seen for p in parse_passages(out)]
    messages = request_messages(run, seen, run.settings.answer_first_prompt)
    reread, escalate = run.settings.reread, run.settings.escalate
    reply, model_s = await _call(run, messages)
    if reply is None:
        return (Usage(), model_s, []) if escalate or not reread else _held(run, "", Usage(), model_s, "")
    usage = reply.usage
    ended, answer, why = _judged(run, reply, seen, shown, usage, model_s, final=not (escalate or reread))
    if ended is not None:
        return ended
    first = reply.content.strip()  # what the task API shows as the task's first answer
    if search is not None and run.settings.verify_search and verifiable(answer, why, seen, run.rec.goal):
        verified = await _verified(run, answer, search, usage, model_s)
        if verified is not None:
            return verified
    run.first_declined = first_declined = why == answercheck.ANSWER_FIRST_UNANSWERED
    if reread and why is not None:
        # Each reading again is a fresh request over the same passages in the order named; the next
        # one comes only when this one's answer fails its check too (answering.rereadOrder).
        for order in READINGS[run.settings.reread_order]:
            metrics.ANSWER_FIRST.labels("reread").inc()
            reseen = in_order(seen, order)
            reshown = [(p["source"], p["text"]) for out in reseen for p in parse_passages(out)]
            again, seconds = await _call(run, request_messages(run, reseen, reread))
            model_s += seconds
            if again is None:
                break
            usage = usage + again.usage
            ended, answer, why = _judged(run, again, reseen, reshown, usage, model_s, first=first, form=reread)
            if ended is not None:
                return ended
            reply = again
            run.first_declined = run.first_declined or why == answercheck.ANSWER_FIRST_UNANSWERED
        if not escalate:
            return _held(run, answer or reply.content.strip(), usage, model_s, first, after_decline=first_declined)
    metrics.ANSWER_FIRST.labels("escalated").inc()
    run.escalated = first or "(no answer)"  # shown on the loop's first step
    log.info("answer first: the loop goes on", extra={"problem": (why or "")[:300]})
    turn = repair_messages(reply.content, why, run.settings.decisions) if why else []
    return usage, model_s, turn


async def _call(run: TaskRun, messages: list[dict[str, Any]]) -> tuple[ModelReply | None, float]:
    """One tool-less call of the task's opening: the reply (None when the deadline or the context
    ran out: the loop's own call meets them) and its model seconds."""
    left = run.rec.deadline - time.time()
    t0 = time.monotonic()
    try:
        with timeouts.timeout(left):
            reply = await run.model.complete(run.request(messages, left))
    except (TimeoutError, ContextOverflow) as e:
        log.info("answer-first call failed", extra={"error": str(e)[:300]})
        return None, time.monotonic() - t0
    return reply, time.monotonic() - t0


def _judged(
    run: TaskRun,
    reply: ModelReply,
    seen: list[str],
    shown: list[tuple[str, str]],
    usage: Usage,
    model_s: float,
    *,
    final: bool = False,
    first: str = "",
    form: str = "",
) -> tuple[Step | None, str, str | None]:
    """An opening call's reply judged: (the final step when its answer passes the check, or
    ``final`` makes it the answer; its answer; why it does not end the task). ``first``: the
    task's first answer when this reply is the second reading (the step records it, so the eval
    counts what the reading won or lost); ``form``: the request's form (unset: answerFirstPrompt's)."""
    content, calls, why = run.interpret(reply, False, Offer((), True), [])
    if why is not None or calls:
        return None, "", why
    # The quote-first form is read from the reply as written (the text-call reading drops a "Quote:" line).
    quoting = (form or run.settings.answer_first_prompt) == "Quote"
    numbered = answercheck.passage_numbers(seen, form or run.settings.answer_first_prompt)
    answer, why = _first_answer(run, reply.content if quoting else content, seen, shown, quoting, numbered)
    if why is not None and not final:
        return None, answer, why
    first = first or answer
    other = []
    if run.settings.decline_other_subjects:
        other = answercheck.other_subject(answer, shown, run.rec.goal, run.settings.system_prompt)
    if other:
        metrics.ANSWER_FIRST.labels("declined").inc()
        log.info("declined: no passage holding the answer's values names the question's", extra={
            "names": other[:5], "answer": answer[:300]})  # fmt: skip
        decline = answercheck.decline_other(other)
        return Step(len(run.steps), decline, [], usage, model_s, first_answer=first), answer, why
    if run.held_after_decline(answer):  # a second reading after a decline is held as the loop's answer: names too
        return None, answer, answercheck.check_problem(answercheck.unsupported_claims(answer, seen, run.rec.goal))
    metrics.ANSWER_FIRST.labels("answered").inc()
    return Step(len(run.steps), answer, [], usage, model_seconds=model_s, first_answer=first), answer, why


def verifiable(answer: str, why: str | None, seen: list[str], goal: str) -> bool:
    """Whether a first answer that failed its check did so only for values no passage holds: not a
    decline, not a passage given in the answer's place, not an unusable reply."""
    if not answer or why in (answercheck.ANSWER_FIRST_UNANSWERED, answercheck.CITATION_PROBLEM):
        return False
    return bool(answercheck.unsupported(answer, seen, goal))


# The verifying search joins each passage's neighbouring chunk on either side: the answer's words find
# the page, and the value is often in the chunk beside the one they rank (a table after its caption,
# "a 128-bit quantity" a sentence after the type's heading). Replayed over the PostgreSQL held-out
# part's three refused right values, the five passages alone held none of them, with a neighbour each
# all three (docs/results/2026-11-28-verify-search-replay.md).
VERIFY_READ_AROUND = 1
VERIFY_QUERY_MIN_WORDS = 6  # a shorter answer ("119 [source: x]") says too little to search with alone


def verify_query(answer: str, goal: str) -> str:
    """The verifying search's query: the answer's words without its citations, after the question
    when the answer alone is too short to say what it is about. Pure."""
    claim = " ".join(answercheck.TAG_RX.sub(" ", answercheck.SOURCES_RX.sub("", answer)).split())
    return claim if len(claim.split()) >= VERIFY_QUERY_MIN_WORDS else f"{' '.join(goal.split())} {claim}"


async def _verified(run: TaskRun, answer: str, search: Search, usage: Usage, model_s: float) -> Step | None:
    """The verifying search: the final step when the passages it adds hold the answer (``held``),
    else None and the task goes on as it would have (a reading again, the loop or the held decline)."""
    await search(verify_query(answer, run.rec.goal))  # failed (Milvus down, the breaker open): nothing holds it
    seen = run.seen_outputs()
    shown = [(p["source"], p["text"]) for out in seen for p in parse_passages(out)]
    s = run.settings
    cited = held(answer, seen, shown, run.rec.goal, s.check_answer_names, s.decline_other_subjects, s.system_prompt)
    if cited is None:
        log.info("answer first: no passage the verifying search found holds the answer", extra={"answer": answer[:200]})
        return None
    metrics.ANSWER_FIRST.labels("verified").inc()
    return Step(len(run.steps), cited, [], usage, model_seconds=model_s, first_answer=cited)


def names_problem(answer: str, seen: list[str], goal: str, check_names: bool) -> str | None:
    """With checkAnswerNames: the code names the first answer gives that no passage mentions. Pure."""
    names = answercheck.unknown_answer_names(answer, seen, goal) if check_names else []
    return answercheck.check_problem(names) if names else None


def held(
    answer: str,
    seen: list[str],
    shown: list[tuple[str, str]],
    goal: str,
    check_names: bool,
    other_subjects: bool,
    subject: str,
) -> str | None:
    """The first answer cited where the passages hold it, or None: it passes the plain answer's
    check over them (``plain_answer``), and with ``other_subjects`` a page holding its values names
    the question's identifiers (``subject``: the fleet's system prompt). The verifying search's
    judgement, and its replay's. Pure."""
    cited, why = plain_answer(answer, seen, shown, goal, check_names)
    if why is not None:
        return None
    if other_subjects and answercheck.other_subject(cited, shown, goal, subject):
        return None  # what holds the values is about another thing: the reading again or the loop decides
    return cited


def _held(run: TaskRun, answer: str, usage: Usage, model_s: float, first: str, *, after_decline: bool = False) -> Step:
    """The task's end after a second reading that failed its check too, with the loop off: its
    decline when it declined, else the decline (what it states, no passage holds). After a first
    answer that declined, always the decline: a second reading that declines may say first what no
    passage holds ("Setting sslnegotiation to direct changes the SSL handshake ... The manual does
    not say.", a PostgreSQL fresh-e answer to a question about a setting no page names)."""
    metrics.ANSWER_FIRST.labels("held").inc()
    declined = bool(answer.strip()) and answercheck.says_unanswered(answer)
    own = declined and not after_decline
    ended = answercheck.tidy_citations(answer) if own else answercheck.DECLINE
    log.info("answer first: the second reading failed its check too", extra={"answer": answer[:300]})
    return Step(len(run.steps), ended, [], usage, model_seconds=model_s, first_answer=first or ended)


# answering.rereadOrder -> the orders of the readings again, each after the one before failed its check.
READINGS: dict[str, tuple[str, ...]] = {
    "Ranked": ("Ranked",),
    "Reversed": ("Reversed",),
    "RankedThenReversed": ("Ranked", "Reversed"),
}


def in_order(seen: list[str], order: str) -> list[str]:
    """The search outputs as the second reading shows them: as searched (Ranked), or each output's
    passages in reverse, numbered again from 1, the first ranked last (Reversed). Pure."""
    if order == "Ranked":
        return seen
    parsed = [parse_passages(out) for out in seen]
    return [format_passages(ps[::-1]) if ps else out for out, ps in zip(seen, parsed, strict=True)]


def fleet_messages(system_prompt: str, seen: list[str], goal: str) -> list[dict[str, str]]:
    """The Fleet form's request: the fleet's system prompt, then the answer-first instruction, each
    search output as the search wrote it and the question. Pure (the replay benches send it too)."""
    passages_text = "\n\n".join(seen)
    asked = f"{answercheck.ANSWER_FIRST}\n\n{passages_text}\n\nQuestion: {goal}"
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": asked}]


def request_messages(run: TaskRun, seen: list[str], form: str) -> list[dict[str, str]]:
    """The answer-first request in the form answering.prompt names: the
    fleet's system prompt before one-shot RAG's instruction (Fleet), one-shot RAG's request itself
    (OneShot), or that request with the quote-first instruction (Quote)."""
    goal = run.rec.goal
    if form == "Fleet":
        return fleet_messages(run.settings.system_prompt, seen, goal)
    passages = [p for out in seen for p in parse_passages(out)]
    if form == "Quote":
        return rag_messages(goal, passages, answercheck.QUOTE_FIRST)
    return rag_messages(goal, passages)


def _first_answer(
    run: TaskRun,
    content: str,
    seen: list[str],
    shown: list[tuple[str, str]],
    quoting: bool,
    numbered: dict[int, str],
) -> tuple[str, str | None]:
    """The answer-first reply's answer (cited) and why it does not end the task, or None. A
    quote-first reply is judged by its quote; a reply without an "Answer:" line as a plain one.
    ``numbered``: a passage's number -> its source, as the request numbered them."""
    goal = run.rec.goal
    quoted = answercheck.read_quoted(content) if quoting else None
    if quoted is not None and quoted.quote:
        names = names_problem(quoted.answer, seen, goal, run.settings.check_answer_names)
        why = answercheck.quote_problem(quoted, shown, goal) or names
        source = answercheck.quote_source(quoted.quote, shown)
        answer = with_sources(quoted.answer, [source]) if source else quoted.answer
        return (run.cited(answer, shown) if why is None else answer), why
    content = quoted.answer if quoted is not None else content
    return plain_answer(content, seen, shown, goal, run.settings.check_answer_names, numbered)


def plain_answer(
    content: str,
    seen: list[str],
    shown: list[tuple[str, str]],
    goal: str,
    check_names: bool,
    numbered: dict[int, str] | None = None,
) -> tuple[str, str | None]:
    """A plain first answer's answer (cited when it passes) and why it does not end the task, or
    None: a passage in the answer's place, a decline, a value no passage holds or (``check_names``)
    a code name none mentions. ``numbered`` (passage_numbers) reads a passage cited by its number.
    Pure: the stage's check and its replay's (e2e/bench/verify_replay.py)."""
    answer = content.strip()
    if answercheck.citation_in_place(answer):  # before the value check: a score is no value it states
        why: str | None = answercheck.CITATION_PROBLEM
    else:
        why = answercheck.first_answer_problem(answer, seen, goal) or names_problem(answer, seen, goal, check_names)
    tidied = answercheck.tidy_citations(answer, numbered)
    answer = citing.without_unretrieved(tidied, [source for source, _ in shown])
    return (citing.cite(answer, shown, goal) if why is None else answer), why
