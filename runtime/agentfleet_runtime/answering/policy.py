"""What an answer policy is given and what it gives back: the loop calls a policy's ``open`` once, at the
start of a task, with a narrow view of the task (``Opening``), and the policy either ends the task
(``Ended``) or hands it to the loop (``Handoff``). The policy never sees the loop's run: it searches and
asks the model through the two callables the loop gives it, which checkpoint each search as a step and
hold each call to the task's deadline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from agentfleet_runtime.core.types import Usage


@dataclass(frozen=True, slots=True)
class Searched:
    """One search's result as the opening sees it."""

    ok: bool  # the search answered (with passages or none); False: it failed (the index down, a breaker open)
    output: str  # what it showed: the passages as the Retrieval tool formats them ("" when it failed)


@dataclass(frozen=True, slots=True)
class Asked:
    """One tool-less model call's reply as the loop reads it."""

    text: str  # the reply as the model wrote it
    content: str  # the answer the loop reads from it (a text call or a JSON decision read out)
    problem: str | None  # why it cannot be an answer (a tool call where none is offered); None: it can
    called_tools: bool  # the reply called a tool: no answer, whatever the problem
    usage: Usage


Search = Callable[[str], Awaitable[Searched]]  # a query -> its search, run as a step without a model call
Ask = Callable[[list[dict[str, str]]], Awaitable[tuple[Asked | None, float]]]  # None: the time or context ran out


@dataclass(frozen=True, slots=True)
class Opening:
    """What a policy may use of a task: its goal, the fleet's subject, a search and a model call."""

    goal: str
    subject: str  # the fleet's system prompt: what its documents are about (names it states are no unknowns)
    search: Search
    ask: Ask  # held to the task's deadline by the loop: the budget left is the loop's to keep


@dataclass(frozen=True, slots=True)
class Ended:
    """The task's end, decided before the loop."""

    answer: str
    first_answer: str = ""  # the answer the first reading gave (the task API's steps[].firstAnswer)
    usage: Usage | None = None  # the model calls that made it; None: no model call did (a decline before any)
    seconds: float = 0.0  # their model time


@dataclass(frozen=True, slots=True)
class Handoff:
    """The task goes on in the loop, with what the opening leaves its first step."""

    usage: Usage = Usage()  # the opening's model calls, counted on the loop's first step
    seconds: float = 0.0
    reply: str = ""  # the last reading's reply, shown to the model with ``problem`` as a repair turn
    problem: str | None = None  # why that reply did not end the task (None: no turn)
    first_answer: str = ""  # the first reading's answer, recorded on the loop's first step
    hold: bool = False  # the loop's answer is held to the passages: a first answer declined rightly


class AnswerPolicy(Protocol):
    """How a fleet answers: the loop calls ``open`` once, before its first step."""

    tool: str | None  # the Retrieval tool the opening searches with; None: the policy searches nothing

    async def open(self, opening: Opening) -> Ended | Handoff: ...
