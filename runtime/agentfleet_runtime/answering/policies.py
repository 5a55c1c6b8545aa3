"""The answer policies a fleet chooses (``spec.tools[].retrieval.answerPolicy``), one class each, and the
named experiment variants each accepts from the runtime configuration (``answering: {variant, params}``,
which the operator never reads). docs/answer-policy.md has how each works and what each measured."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentfleet_contract.runtime_config import RuntimeConfig

from agentfleet_runtime.answering.policy import AnswerPolicy, Ended, Handoff, Opening
from agentfleet_runtime.answering.stages import (
    AnswerFirst,
    DeclineUnknownNames,
    Escalate,
    Hold,
    ReadAgain,
    Reading,
    SearchFirst,
    Stage,
    other_subjects,
)


class VariantError(ValueError):
    """The runtime configuration names a variant the policy does not have, or parameters it does not take."""


async def run_stages(stages: tuple[Stage, ...], opening: Opening) -> Ended | Handoff:
    """The stages in order over one task's reading, until one ends the task or hands it to the loop."""
    reading = Reading(opening)
    for stage in stages:
        result = await stage(reading)
        if result is not None:
            return result
    return Handoff(seconds=reading.seconds)


@dataclass(frozen=True, slots=True)
class Loop:
    """The agent loop from the first call: the model searches, reads and answers as it decides."""

    tool: None = None

    VARIANTS = frozenset[str]()

    async def open(self, opening: Opening) -> Ended | Handoff:
        return Handoff()


@dataclass(frozen=True, slots=True)
class OneShot:
    """Search with the question; one call answers from those passages with one-shot RAG's own request,
    and its answer is the task's (the fleet's equivalent of the one-shot RAG baseline). A reply that
    calls a tool, or a call the time ran out on, goes on to the loop."""

    tool: str  # the Retrieval tool searched with

    VARIANTS = frozenset[str]()
    STAGES = (SearchFirst(), AnswerFirst(final=True), Escalate())

    async def open(self, opening: Opening) -> Ended | Handoff:
        return await run_stages(self.STAGES, opening)


@dataclass(frozen=True, slots=True)
class Cascade:
    """``OneShot``'s answer, checked without a model: it ends the task when every value it states is in a
    passage, it names what the question asks, and it does not say the passages lack the answer; else the
    loop goes on with tools, and after a first answer that declined its answer is held to the passages.
    A question naming what the documents never mention is declined before any model call.

    Variant ``reread`` (pre-registered: it met every goal with the 0.5B on the four held-out and fresh
    sets, and missed two with the 1.5B; docs/answer-policy.md): a first answer that fails its check is
    read again once in the fleet's form, and the task ends there, held to the passages, with no loop."""

    tool: str
    reread: bool = False

    VARIANTS = frozenset({"reread"})
    CHECKS = (other_subjects,)

    @property
    def stages(self) -> tuple[Stage, ...]:
        head: tuple[Stage, ...] = (SearchFirst(), DeclineUnknownNames(), AnswerFirst(self.CHECKS))
        if self.reread:
            return (*head, ReadAgain(self.CHECKS), Hold())
        return (*head, Escalate(hold=True))

    async def open(self, opening: Opening) -> Ended | Handoff:
        return await run_stages(self.stages, opening)


POLICIES: dict[str, type[Loop] | type[OneShot] | type[Cascade]] = {"Loop": Loop, "OneShot": OneShot, "Cascade": Cascade}


def policy(name: str, tool: str | None, variant: str = "", params: Mapping[str, Any] | None = None) -> AnswerPolicy:
    """The policy ``name`` searching with ``tool``, in ``variant`` (``""``: as shipped). No variant takes
    parameters yet: ``params`` must be empty."""
    cls = POLICIES[name]
    if variant and variant not in cls.VARIANTS:
        known = ", ".join(sorted(cls.VARIANTS)) or "none"
        raise VariantError(f"answering.variant: {name} has no variant {variant!r} (its variants: {known})")
    if params:
        raise VariantError(f"answering.params: {name}'s variant {variant or '(shipped)'} takes no parameters")
    if cls is Loop or tool is None:
        return Loop()
    if cls is OneShot:
        return OneShot(tool)
    return Cascade(tool, reread=variant == "reread")


def policy_for(config: RuntimeConfig) -> AnswerPolicy:
    """The fleet's answer policy: that of the Retrieval tool whose answerPolicy is not Loop (at most one
    may set another, the API server refuses a second), in the runtime configuration's variant."""
    retrieval = [t for t in config.tools if t.type == "Retrieval" and t.retrieval is not None]
    tool = next((t for t in retrieval if t.retrieval and t.retrieval.answer_policy != "Loop"), None)
    name = tool.retrieval.answer_policy if tool is not None and tool.retrieval is not None else "Loop"
    answering = config.answering
    variant, params = (answering.variant, answering.params) if answering is not None else ("", {})
    return policy(name, tool.name if tool is not None else None, variant, params)
