"""Prompt building: system prompt + tool schemas + session context + goal + steps -> messages.

The history is rebuilt from checkpointed steps on every call, so a resumed task sends exactly
the prompt the dead worker would have sent (and a sticky model router sees the same prefix).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from agentfleet_runtime.textcalls import parse_text_reply
from agentfleet_runtime.types import Step

TEXT_PROTOCOL = """You can use these tools:
{tools}

To use a tool, reply with only this, and nothing else:
<tool_call>{{"name": "<tool name>", "arguments": {{...}}}}</tool_call>
You will then get the tool's result. When you know the answer, reply with:
Final Answer: <the answer>"""


def tool_schema(name: str, description: str, parameters: dict[str, Any] | None) -> dict[str, Any]:
    """An OpenAI ``tools`` entry."""
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": parameters or {"type": "object", "properties": {}},
        },
    }


def describe_tools_for_text(schemas: Sequence[dict[str, Any]]) -> str:
    lines = []
    for s in schemas:
        fn = s["function"]
        props = fn.get("parameters", {}).get("properties", {})
        args = ", ".join(f"{k}: {v.get('type', 'any')}" for k, v in props.items())
        lines.append(f"- {fn['name']}({args}): {fn.get('description', '')}".rstrip(": "))
    return "\n".join(lines)


def _is_text_step(step: Step) -> bool:
    return bool(step.tool_calls) and all(c.id.startswith("text-") for c in step.tool_calls)


def build_messages(
    *,
    system_prompt: str,
    goal: str,
    steps: Sequence[Step],
    tool_schemas: Sequence[dict[str, Any]] = (),
    text_tools: bool = False,
    session_context: Sequence[tuple[str, str]] = (),
) -> list[dict[str, Any]]:
    system = system_prompt
    if text_tools and tool_schemas:
        system += "\n\n" + TEXT_PROTOCOL.format(tools=describe_tools_for_text(tool_schemas))
    if session_context:
        earlier = "\n".join(f"- Q: {g}\n  A: {a}" for g, a in session_context)
        system += f"\n\nEarlier in this session:\n{earlier}"
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}, {"role": "user", "content": goal}]
    for step in steps:
        if not step.tool_calls:
            messages.append({"role": "assistant", "content": step.content})
            continue
        obs = step.observations or []
        if _is_text_step(step):
            # The model wrote the call as text: show it its own text and the results as a user turn.
            messages.append({"role": "assistant", "content": step.content or _calls_as_text(step)})
            if obs:
                messages.append({"role": "user", "content": "\n\n".join(f"Observation from {o.name}:\n{o.output}" for o in obs)})
            continue
        messages.append(
            {
                "role": "assistant",
                "content": step.content or None,
                "tool_calls": [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": json.dumps(c.arguments)}} for c in step.tool_calls],
            }
        )
        for o in obs:
            messages.append({"role": "tool", "tool_call_id": o.call_id, "content": o.output})
    return messages


def _calls_as_text(step: Step) -> str:
    return "\n".join(f"<tool_call>{json.dumps({'name': c.name, 'arguments': c.arguments})}</tool_call>" for c in step.tool_calls)


def best_answer(steps: Sequence[Step]) -> str:
    """What to return when a budget stops a task: the latest thing the model said, else the latest
    observation, else nothing."""
    for step in reversed(steps):
        text = parse_text_reply(step.content, ())[0] if _is_text_step(step) else step.content
        if text.strip():
            return text.strip()
    for step in reversed(steps):
        for o in reversed(step.observations or []):
            if o.ok and o.output.strip():
                return f"(no final answer; last {o.name} result) {o.output.strip()[:2000]}"
    return ""
