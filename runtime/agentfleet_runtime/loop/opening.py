"""The loop's settings, and how a task's conversation opens: the prompt's head and the way decisions are
asked for, and the call a search without a model call makes. Pure; the loop (agentfleet_runtime.loop.agent)
runs them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from agentfleet_runtime.answering.policies import Loop
from agentfleet_runtime.answering.policy import AnswerPolicy
from agentfleet_runtime.core import fastjson
from agentfleet_runtime.core.types import ToolCall
from agentfleet_runtime.loop.decisions import JSON_CALL_PREFIX, DecisionSettings, protocol_text
from agentfleet_runtime.model.prompt import PromptCache, head_messages
from agentfleet_runtime.tools.retrieval import RepeatsElided


@dataclass(slots=True)
class LoopSettings:
    """What the loop itself needs; how the fleet answers is its answer policy's (``answering``)."""

    system_prompt: str
    tool_calling: Literal["auto", "native", "text"] = "auto"
    session_history: int = 5  # earlier finished tasks of the session shown to the model
    decisions: DecisionSettings = field(default_factory=DecisionSettings)
    answering: AnswerPolicy = field(default_factory=Loop)  # called once, before the first step
    tracer: Any = None  # an OpenTelemetry tracer (tracing.configure); None: tracing off


@dataclass(frozen=True, slots=True)
class Opening:
    """What every step of one task is asked with."""

    schemas: list[dict[str, Any]]  # the tools' schemas, as the model sees them
    decide: DecisionSettings
    json_mode: bool  # decisions as a JSON object (decisions.mode JSONSchema, with tools)
    text_tools: bool  # tool calls written as <tool_call> text in the reply
    native: bool  # tool calls through the API's tools field
    prompt: PromptCache


def open_task(
    settings: LoopSettings, schemas: list[dict[str, Any]], goal: str, session_ctx: list[tuple[str, str]]
) -> Opening:
    """The task's prompt head and decision mode, from the loop's settings and the tools' schemas."""
    decide = settings.decisions
    json_mode = decide.mode == "JSONSchema" and bool(schemas)
    text_tools = settings.tool_calling == "text" and not json_mode
    native = settings.tool_calling != "text" and not json_mode
    system = settings.system_prompt + ("\n\n" + protocol_text(schemas) if json_mode else "")
    prompt = PromptCache(
        head_messages(
            system_prompt=system,
            goal=goal,
            tool_schemas=schemas,
            text_tools=text_tools,
            session_context=session_ctx,
        ),
        RepeatsElided,
    )
    return Opening(schemas, decide, json_mode, text_tools, native, prompt)


SEARCH_FIRST_QUERY_CHARS = 2000  # a goal can be 100k characters; a query that long only blurs the embedding


def search_first_call(
    tool: str,
    goal: str,
    *,
    json_mode: bool,
    text_tools: bool,
    n: int = 0,
) -> tuple[ToolCall, str]:
    """The call a search of the answer policy's opening (step ``n``) makes and the text the history shows
    as the model's turn, in the form the task's decisions take (JSON decision, <tool_call> text, or
    native call). Pure."""
    args: dict[str, Any] = {"query": " ".join(goal.split())[:SEARCH_FIRST_QUERY_CHARS]}
    if json_mode:
        return ToolCall(f"{JSON_CALL_PREFIX}{n}", tool, args), fastjson.dumps({"action": tool, "arguments": args})
    if text_tools:
        call = ToolCall(f"text-{n}", tool, args)
        return call, calls_text([call])
    return ToolCall(f"search-first-{n}", tool, args), ""


def calls_text(calls: list[ToolCall]) -> str:
    """Tool calls as the <tool_call> text a text-tools reply carries."""
    return "\n".join(
        f"<tool_call>{fastjson.dumps({'name': c.name, 'arguments': c.arguments})}</tool_call>" for c in calls
    )
