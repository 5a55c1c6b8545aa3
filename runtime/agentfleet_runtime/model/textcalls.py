"""Text fallback: find tool calls in a plain-text model answer.

Small and older models often ignore the ``tools`` field and write the call in their text. The
formats seen in practice, tried in this order:

1. ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>`` (Hermes / Qwen templates)
2. ReAct: ``Action: <tool>`` followed by ``Action Input: <json or text>``
3. a JSON object (bare or in a ``` fence) naming a known tool under name/tool/function, with
   arguments under arguments/args/parameters/input or beside the name (the flat form of a JSON
   decision); a list of such objects is several calls

An explicit marker (tags, ``Action:``) is trusted even for an unknown tool name, so the model gets
an "unknown tool" observation and can correct itself; a bare JSON object must name a known tool,
because a final answer may well be JSON. ``Final Answer:`` text wins over everything else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from agentfleet_runtime.core import fastjson
from agentfleet_runtime.core.types import ToolCall

_TAGGED = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL | re.IGNORECASE)
_FINAL = re.compile(r"(?:^|\n)\s*(?:final answer|answer)\s*:\s*(.*)", re.DOTALL | re.IGNORECASE)
_ACTION = re.compile(
    (
        r"(?:^|\n)\s*Action\s*:\s*`?([A-Za-z][\w-]*)`?\s*(?:\n\s*Action "
        r"Input\s*:\s*(.*?))?(?=\n\s*(?:Observation|Thought)\s*:|\Z)"
    ),
    re.DOTALL | re.IGNORECASE,
)
_NAME_KEYS = ("name", "tool", "function", "tool_name", "action")
_ARG_KEYS = ("arguments", "args", "parameters", "input", "action_input", "tool_input")
_DECODER = json.JSONDecoder()


def _json_objects(text: str) -> Iterable[Any]:
    """Every top-level JSON value starting at a '{' or '[' in text, left to right."""
    decoder = _DECODER
    i = 0
    while i < len(text):
        j = min((k for k in (text.find("{", i), text.find("[", i)) if k >= 0), default=-1)
        if j < 0:
            return
        try:
            value, end = decoder.raw_decode(text, j)
        except ValueError:
            i = j + 1
            continue
        yield value
        i = end


def _as_call(obj: Any, known: set[str] | None, index: int) -> ToolCall | None:
    if not isinstance(obj, dict):
        return None
    fn = obj.get("function")
    if isinstance(fn, dict):  # OpenAI's own shape written out as text
        obj = fn
    key = next((k for k in _NAME_KEYS if isinstance(obj.get(k), str)), None)
    if key is None:
        return None
    name = obj[key]
    if known is not None and name not in known:
        lowered = {k.lower(): k for k in known}
        if name.lower() not in lowered:
            return None
        name = lowered[name.lower()]
    arg_key = next((k for k in _ARG_KEYS if k in obj), None)
    # Flat form (as a JSON decision's, loop/decisions.py): the arguments beside the name, as
    # Qwen2.5-Coder writes its fenced calls on vLLM ({"name": "search", "query": "..."}).
    args: Any = obj[arg_key] if arg_key is not None else {k: v for k, v in obj.items() if k != key}
    return ToolCall(id=f"text-{index}", name=name, arguments=coerce_arguments(args))


def coerce_arguments(args: Any) -> dict[str, Any]:
    """Arguments as a dict: OpenAI sends a JSON string, models write objects, strings or nothing."""
    if isinstance(args, dict):
        return args
    if isinstance(args, str):
        s = args.strip()
        if not s:
            return {}
        try:
            parsed = fastjson.loads(s)
        except ValueError:
            return {"input": s}
        return parsed if isinstance(parsed, dict) else {"input": parsed}
    if args is None:
        return {}
    return {"input": args}


def _may_hold_call(text: str) -> bool:
    """False when none of the formats below can match: every one needs one of these markers
    (tags, ``Action``, ``answer``, a JSON object or list). Most answers of a model that calls
    tools natively are plain prose: this skips four regex scans and a JSON search for them."""
    if "{" in text or "[" in text:
        return True
    folded = text.casefold()  # as the patterns' IGNORECASE: "ANSWER", "anſwer" (long s) fold to "answer"
    return "<tool_call>" in folded or "action" in folded or "answer" in folded


def parse_text_reply(text: str, tool_names: Iterable[str]) -> tuple[str, list[ToolCall]]:
    """Split a plain-text answer into (content, tool calls). No calls means content is the answer."""
    if not text:
        return "", []
    if not _may_hold_call(text):
        return text.strip(), []
    known = set(tool_names)
    final = _FINAL.search(text)
    # A final answer that comes before any call marker ends the task; one after a call is the
    # model hallucinating the observation, so the call goes first.
    tagged = [m for m in _TAGGED.finditer(text) if m.group(1)]
    if tagged and not (final and final.start() < tagged[0].start()):
        calls = []
        for i, m in enumerate(tagged):
            obj = next(iter(_json_objects(m.group(1))), None)
            call = _as_call(obj, None, i)
            if call:
                calls.append(call)
        if calls:
            return text[: tagged[0].start()].strip(), calls
    action = _ACTION.search(text)
    if action and not (final and final.start() < action.start()):
        name = action.group(1)
        if name.lower() not in ("none", "final", "finish", "final_answer"):
            raw = (action.group(2) or "").strip().strip("`").strip()
            if raw.startswith("json"):
                raw = raw[4:].strip()
            return text[: action.start()].strip(), [ToolCall(id="text-0", name=name, arguments=coerce_arguments(raw))]
    if final:
        return final.group(1).strip(), []
    if known:
        calls = []
        for obj in _json_objects(text):
            items = obj if isinstance(obj, list) else [obj]
            for item in items:
                call = _as_call(item, known, len(calls))
                if call:
                    calls.append(call)
            if calls:
                break
        if calls:
            first = min((k for k in (text.find("{"), text.find("[")) if k >= 0), default=0)
            return text[:first].replace("```json", "").replace("```", "").strip(), calls
    return text.strip(), []
