"""The stages an answer policy's opening is built from, each one step of a pipeline over one task's
``Reading``: search first, decline unknown names, answer first, read again, and the two ends (hand the
task to the loop, or end it held to the passages). A stage returns the task's end (``Ended``), its
hand-off (``Handoff``), or None for the next stage.

Why the stages are what they are (docs/answer-policy.md, docs/answer-first.md):
- The first answer is one-shot RAG's own request over the first passages, with no tools and no decision
  protocol: the 1.5B, asked for a JSON decision here, copied whole passages into its answer.
- A reading again is a fresh request in the fleet's form (``fleet_messages``): continuing the first
  request with its answer and the reason was tried and dropped, since, shown its own decline, the 1.5B
  said it again 9 times in 10 (docs/results/2026-11-29-cascade-candidates.md has the runs).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from agentfleet_runtime.answering import answercheck, citing
from agentfleet_runtime.answering.policy import Asked, Ended, Handoff, Opening
from agentfleet_runtime.core import metrics
from agentfleet_runtime.core.types import Usage
from agentfleet_runtime.tools.retrieval import parse_passages, rag_messages

log = logging.getLogger("agentfleet_runtime.loop.agent")  # the loop's logger: one task's lines in one stream


@dataclass(slots=True)
class Reading:
    """One task's opening as the stages go: what it searched and what the model answered."""

    opening: Opening
    seen: list[str] = field(default_factory=list)  # every search's output, in order
    searched: bool = False  # the first search answered
    usage: Usage = field(default_factory=Usage)
    seconds: float = 0.0
    reply: Asked | None = None  # the latest reading's reply
    answer: str = ""  # the latest reading's answer
    why: str | None = None  # why it does not end the task
    first: str = ""  # the first reading's reply as written
    first_declined: bool = False  # the first reading said the passages do not answer
    declined: bool = False  # some reading said so: the loop's answer is held to the passages after it
    read_again: bool = False

    async def search(self, query: str) -> bool:
        found = await self.opening.search(query)
        if found.ok and found.output:
            self.seen.append(found.output)
        return found.ok


def shown(seen: list[str]) -> list[tuple[str, str]]:
    """(source, text) of every passage of the search outputs ``seen``. Pure."""
    return [(p["source"], p["text"]) for out in seen for p in parse_passages(out)]


# A check of an answer that passed the plain check: the decline the task ends with instead, or None.
Check = Callable[[str, Reading, list[tuple[str, str]]], str | None]


def other_subjects(answer: str, reading: Reading, passages: list[tuple[str, str]]) -> str | None:
    """Decline an answer whose values only pages not naming the question's identifiers hold."""
    other = answercheck.other_subject(answer, passages, reading.opening.goal, reading.opening.subject)
    if not other:
        return None
    metrics.ANSWER_FIRST.labels("declined").inc()
    log.info("declined: no passage holding the answer's values names the question's", extra={
        "names": other[:5], "answer": answer[:300]})  # fmt: skip
    return answercheck.decline_other(other)


def plain_answer(
    content: str, seen: list[str], passages: list[tuple[str, str]], goal: str, numbered: dict[int, str] | None = None
) -> tuple[str, str | None]:
    """A reading's answer (cited when it passes) and why it does not end the task, or None: a passage
    in the answer's place, a decline, or a value no passage holds. ``numbered`` (passage_numbers) reads a
    passage cited by its number. Pure: the stages' check and the replays'."""
    answer = content.strip()
    if answercheck.citation_in_place(answer):  # before the value check: a score is no value it states
        why: str | None = answercheck.CITATION_PROBLEM
    else:
        why = answercheck.first_answer_problem(answer, seen, goal)
    tidied = answercheck.tidy_citations(answer, numbered)
    answer = citing.without_unretrieved(tidied, [source for source, _ in passages])
    return (citing.cite(answer, passages, goal) if why is None else answer), why


def fleet_messages(system_prompt: str, seen: list[str], goal: str) -> list[dict[str, str]]:
    """The fleet's form of a reading: its system prompt, then the answer-first instruction, each search
    output as the search wrote it and the question. Pure (the replay benches send it too)."""
    passages_text = "\n\n".join(seen)
    asked = f"{answercheck.ANSWER_FIRST}\n\n{passages_text}\n\nQuestion: {goal}"
    return [{"role": "system", "content": system_prompt}, {"role": "user", "content": asked}]


def one_shot_messages(seen: list[str], goal: str) -> list[dict[str, str]]:
    """One-shot RAG's own request over the search outputs ``seen``. Pure."""
    return rag_messages(goal, [p for out in seen for p in parse_passages(out)])


def _judged(
    reading: Reading, asked: Asked, form: str, checks: tuple[Check, ...], *, final: bool = False, hold: bool = False
) -> tuple[Ended | None, str, str | None]:
    """A reading's reply judged: (the task's end when its answer passes the check, or ``final`` makes it
    the answer; its answer; why it does not end the task). ``hold``: after a decline, an answer stating
    what no passage holds does not end it either."""
    if asked.problem is not None or asked.called_tools:
        return None, "", asked.problem
    goal, seen = reading.opening.goal, reading.seen
    passages = shown(seen)
    numbered = answercheck.passage_numbers(seen, form)
    answer, why = plain_answer(asked.content, seen, passages, goal, numbered)
    if why is not None and not final:
        return None, answer, why
    first = reading.first or answer
    for check in checks:
        decline = check(answer, reading, passages)
        if decline is not None:
            return Ended(decline, first, reading.usage, reading.seconds), answer, why
    if hold and reading.declined and not answercheck.says_unanswered(answer):
        unheld = answercheck.unsupported_claims(answer, seen, goal)
        if unheld:  # a reading after a decline is held as the loop's answer is: names too
            return None, answer, answercheck.check_problem(unheld)
    metrics.ANSWER_FIRST.labels("answered").inc()
    return Ended(answer, first, reading.usage, reading.seconds), answer, why


async def _ask(reading: Reading, messages: list[dict[str, str]]) -> Asked | None:
    asked, seconds = await reading.opening.ask(messages)
    reading.seconds += seconds
    if asked is not None:
        reading.usage = reading.usage + asked.usage
    return asked


# -- the stages ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SearchFirst:
    """Search with the goal before the first model call, so the first reading holds what one-shot RAG
    would answer from."""

    async def __call__(self, reading: Reading) -> Ended | Handoff | None:
        reading.searched = await reading.search(reading.opening.goal)
        return None


@dataclass(frozen=True, slots=True)
class DeclineUnknownNames:
    """Decline a question naming what the documents never mention: the names no first passage mentions
    are searched alone (no model call either), and the task ends declined when still no passage does."""

    async def __call__(self, reading: Reading) -> Ended | Handoff | None:
        if not reading.searched:
            return None  # a failed search (Milvus down, the tool's breaker open) shows nothing about the documents
        goal, subject = reading.opening.goal, reading.opening.subject
        unknown = answercheck.unknown_names(goal, reading.seen, subject)
        if not unknown:
            return None
        searched = await reading.search(" ".join(unknown))
        unknown = answercheck.unknown_names(goal, reading.seen, subject)
        if not unknown or not searched:
            return None
        log.info("declined: the documents do not mention the question's names", extra={"names": unknown[:5]})
        return Ended(answercheck.decline_unknown(unknown))


@dataclass(frozen=True, slots=True)
class AnswerFirst:
    """One call without tools answers from the first passages with one-shot RAG's own request. Its
    answer ends the task when it passes the check (and ``checks``); with ``final`` it is the answer."""

    checks: tuple[Check, ...] = ()
    final: bool = False

    async def __call__(self, reading: Reading) -> Ended | Handoff | None:
        asked = await _ask(reading, one_shot_messages(reading.seen, reading.opening.goal))
        if asked is None:
            return None
        reading.reply = asked
        ended, reading.answer, reading.why = _judged(reading, asked, "OneShot", self.checks, final=self.final)
        if ended is not None:
            return ended
        reading.first = asked.text.strip()  # what the task API shows as the task's first answer
        reading.first_declined = reading.declined = reading.why == answercheck.ANSWER_FIRST_UNANSWERED
        return None


@dataclass(frozen=True, slots=True)
class ReadAgain:
    """A first answer that fails its check is read again once over the same passages, as a fresh
    request in the fleet's form; its answer ends the task when it passes the check."""

    checks: tuple[Check, ...] = ()

    async def __call__(self, reading: Reading) -> Ended | Handoff | None:
        if reading.reply is None or reading.why is None:
            return None
        reading.read_again = True
        metrics.ANSWER_FIRST.labels("reread").inc()
        asked = await _ask(reading, fleet_messages(reading.opening.subject, reading.seen, reading.opening.goal))
        if asked is None:
            return None
        ended, reading.answer, reading.why = _judged(reading, asked, "Fleet", self.checks, hold=True)
        if ended is not None:
            return ended
        reading.reply = asked
        reading.declined = reading.declined or reading.why == answercheck.ANSWER_FIRST_UNANSWERED
        return None


@dataclass(frozen=True, slots=True)
class Escalate:
    """The loop goes on with tools, shown the last reply and why it did not end the task."""

    hold: bool = False  # after a reading that declined, the loop's answer is held to the passages

    async def __call__(self, reading: Reading) -> Ended | Handoff | None:
        if reading.reply is None:
            return Handoff(seconds=reading.seconds)  # no reading answered: the loop's own call meets the limits
        metrics.ANSWER_FIRST.labels("escalated").inc()
        log.info("answer first: the loop goes on", extra={"problem": (reading.why or "")[:300]})
        return Handoff(
            usage=reading.usage,
            seconds=reading.seconds,
            reply=reading.reply.text,
            problem=reading.why,
            first_answer=reading.first or "(no answer)",
            hold=self.hold and reading.declined,
        )


@dataclass(frozen=True, slots=True)
class Hold:
    """The task ends without the loop after a reading again that failed its check too: its own decline
    when it declined, else the decline (what it states, no passage holds). After a first answer that
    declined, always the decline: a second reading that declines may say first what no passage holds
    ("Setting sslnegotiation to direct changes the SSL handshake ... The manual does not say.", a
    PostgreSQL fresh-e answer to a question about a setting no page names). A reply that called a tool
    goes on to the loop as it would have."""

    async def __call__(self, reading: Reading) -> Ended | Handoff | None:
        if reading.reply is not None and not reading.read_again:
            return await Escalate(hold=True)(reading)
        answer = reading.answer or (reading.reply.text.strip() if reading.reply is not None else "")
        metrics.ANSWER_FIRST.labels("held").inc()
        declined = bool(answer.strip()) and answercheck.says_unanswered(answer)
        ended = answercheck.tidy_citations(answer) if declined and not reading.first_declined else answercheck.DECLINE
        log.info("answer first: the second reading failed its check too", extra={"answer": answer[:300]})
        return Ended(ended, reading.first or ended, reading.usage, reading.seconds)


Stage = Callable[[Reading], Awaitable[Ended | Handoff | None]]
