"""How a model reply becomes a step's decision, and what makes small models usable.

Pure: nothing here calls the model or Redis. The loop (loop.py) asks, per step:

- ``offer``: which tools the fleet's per-tool policy lets the model call now (a tool that must be
  called first, tools whose per-task calls are used up) and whether it may answer;
- ``request_extras``: what the request carries for that: in ``ToolCalls`` mode the tools field
  (narrowed to the offer, ``tool_choice`` "required" when it may not answer); in ``JSONSchema``
  mode no tools field but a ``response_format`` JSON schema whose alternatives are exactly the
  offered actions, so an engine with grammar decoding (llama.cpp's llama-server, vLLM) can only
  produce a valid decision;
- ``read_decision``: a JSONSchema reply parsed into tool calls or a final answer;
- ``problem``: why a decision cannot be used (unknown or unoffered tool, arguments that fail the
  tool's schema, an answer the policy forbids), shown to the model in a repair turn.

Schemas sent to engines stay inside the portable subset (type, properties, required, items,
enum, anyOf, minimum/maximum, description; ``additionalProperties`` only as ``false``): strict
validators refuse ``additionalProperties`` given as an object.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from agentfleet_runtime.answering.citing import with_sources
from agentfleet_runtime.core.types import Step, ToolCall
from agentfleet_runtime.model.wire import portable
from agentfleet_runtime.tools.fanout import goals_of

Mode = Literal["ToolCalls", "JSONSchema"]
ANSWER = "answer"
JSON_CALL_PREFIX = "json-"  # ids of calls read from a JSON decision (prompt.py renders them as text turns)

DECISION_PROTOCOL = """Decide one action at a time. Reply with one JSON object and nothing else:
{actions}
- {{"action": "answer", "answer": "<the answer>", "sources": ["<source of each passage the answer uses>"]}}
After each tool action you get its result and decide again."""


@dataclass(frozen=True, slots=True)
class ToolRule:
    """One tool's policy (spec.decisions.toolPolicies[])."""

    tool: str
    first_step: bool = False  # the task's first step must call it
    max_calls_per_task: int | None = None  # then it is no longer offered


@dataclass(frozen=True, slots=True)
class AnswerCheckSettings:
    """spec.decisions.answerCheck (answercheck.py)."""

    retries: int = 1  # answers of one task sent back to search again or decline
    decline: bool = True  # onUnsupported Decline: an answer still unsupported becomes a decline


@dataclass(frozen=True, slots=True)
class DecisionSettings:
    mode: Mode = "ToolCalls"
    repair_attempts: int = 1
    rules: tuple[ToolRule, ...] = ()
    answer_check: AnswerCheckSettings | None = None

    @classmethod
    def from_spec(cls, wire: Mapping[str, Any] | None) -> DecisionSettings:
        """From the AgentFleet's spec.decisions (camelCase, as the runtime config carries it)."""
        d = dict(wire or {})
        rules = tuple(
            ToolRule(p["tool"], bool(p.get("firstStep", False)), p.get("maxCallsPerTask"))
            for p in d.get("toolPolicies") or ()
        )
        check = d.get("answerCheck")
        answer_check = None
        if check is not None:
            decline = check.get("onUnsupported", "Decline") == "Decline"
            answer_check = AnswerCheckSettings(int(check.get("retries", 1)), decline)
        mode, repairs = d.get("mode", "ToolCalls"), int(d.get("repairAttempts", 1))
        return cls(mode=mode, repair_attempts=repairs, rules=rules, answer_check=answer_check)


@dataclass(frozen=True, slots=True)
class Offer:
    """What the model may do at one step."""

    tools: tuple[str, ...]
    may_answer: bool = True
    why: str = ""  # the policy behind a narrowed offer, for the repair message


@dataclass(slots=True)
class Decision:
    content: str
    calls: list[ToolCall] = field(default_factory=list)
    problem: str | None = None


REPEATED_READ = (
    "the last step repeated a search already made with the same arguments, so its result is above: answer from it"
)


def _call_key(call: ToolCall) -> tuple[str, str]:
    return call.name, json.dumps(call.arguments, sort_keys=True, default=str)


def repeated_read(steps: Sequence[Step], read_only: Iterable[str]) -> bool:
    """Whether the last step only repeated, with the same arguments, calls of read-only tools made
    in earlier steps: their results are already in the history, so the call added nothing."""
    if len(steps) < 2 or not steps[-1].tool_calls:
        return False
    readers = set(read_only)
    last = steps[-1].tool_calls
    if any(c.name not in readers for c in last):
        return False
    seen = {_call_key(c) for s in steps[:-1] for c in s.tool_calls}
    return all(_call_key(c) in seen for c in last)


def offer(
    settings: DecisionSettings,
    tool_names: Sequence[str],
    steps: Sequence[Step],
    unavailable: Iterable[str] = (),
    read_only: Iterable[str] = (),
) -> Offer:
    """``unavailable``: tools this task cannot use at all (Spawn tools at the depth limit), never
    offered. ``read_only``: tools whose identical calls return what they returned before (searches);
    after a step that only repeated such calls the model may only answer. Small models otherwise
    repeat one search until the step budget ends the task (seen: 24 identical searches)."""
    if read_only and repeated_read(steps, read_only):
        return Offer((), True, REPEATED_READ)
    if not settings.rules and not unavailable:
        return Offer(tuple(tool_names))  # the common case, every step of every task: no counting
    used = Counter(c.name for s in steps for c in s.tool_calls)
    spent = {
        r.tool for r in settings.rules if r.max_calls_per_task is not None and used[r.tool] >= r.max_calls_per_task
    }
    gone = set(unavailable)
    names = tuple(n for n in tool_names if n not in spent and n not in gone)
    if not steps:
        first = tuple(r.tool for r in settings.rules if r.first_step and r.tool in names)
        if first:
            return Offer(first, may_answer=False, why=f"the first step must call {' or '.join(first)}")
    why = f"{', '.join(sorted(spent))}: calls per task used up" if spent else ""
    return Offer(names, True, why)


def _parameters(tool_schema: Mapping[str, Any]) -> dict[str, Any]:
    return tool_schema.get("function", {}).get("parameters") or {"type": "object", "properties": {}}


def decision_schema(schemas: Mapping[str, Mapping[str, Any]], choice: Offer) -> dict[str, Any]:
    """The response_format schema of one step: one alternative per offered action, "action" first."""
    alternatives = []
    for name in choice.tools:
        alternatives.append(
            {
                "type": "object",
                "properties": {
                    "action": {"type": "string", "enum": [name]},
                    "arguments": portable(_parameters(schemas[name])),
                },
                "required": ["action", "arguments"],
                "additionalProperties": False,
            }
        )
    if choice.may_answer or not alternatives:
        alternatives.append(
            {
                "type": "object",
                "properties": {
                    "action": {"type": "string", "enum": [ANSWER]},
                    "answer": {"type": "string"},
                    "sources": {"type": "array", "items": {"type": "string"}},
                },
                "required": ["action", "answer", "sources"],
                "additionalProperties": False,
            }
        )
    return alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}


def response_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "decision", "schema": schema}}


def protocol_text(schemas: Sequence[Mapping[str, Any]]) -> str:
    """The system prompt's description of the JSONSchema actions (no tools field is sent then)."""
    lines = []
    for s in schemas:
        fn = s["function"]
        props = _parameters(s).get("properties", {})
        args = ", ".join(f'"{k}": {_placeholder(v)}' for k, v in props.items())
        desc = f"  ({fn['description']})" if fn.get("description") else ""
        lines.append(f'- {{"action": "{fn["name"]}", "arguments": {{{args}}}}}{desc}')
    return DECISION_PROTOCOL.format(actions="\n".join(lines))


def _placeholder(schema: Mapping[str, Any]) -> str:
    if schema.get("type") == "array":
        return f"[{_placeholder(schema.get('items') or {})}, ...]"
    return f'"<{schema["type"]}>"' if schema.get("type") == "string" else f"<{schema.get('type', 'value')}>"


def request_extras(
    settings: DecisionSettings, schemas: Sequence[Mapping[str, Any]], choice: Offer, *, send_tools: bool
) -> dict[str, Any]:
    """tools / tool_choice / response_format of one step's request. JSON decisions need a tool
    to decide on: an agent without tools answers in plain text (the loop reads it so) in either mode."""
    by_name = {s["function"]["name"]: s for s in schemas}
    if settings.mode == "JSONSchema" and schemas:
        return {"response_format": response_format(decision_schema(by_name, choice))}
    if not send_tools or not schemas:
        return {}
    tools = [by_name[n] for n in choice.tools if n in by_name]
    if not tools:
        return {}
    return {"tools": tools, "tool_choice": "auto" if choice.may_answer else "required"}


def read_decision(text: str, numbered: Mapping[int, str] | None = None, seen: Sequence[str] = ()) -> Decision:
    """A JSONSchema reply: a tool action becomes one call, an answer the final content.
    ``numbered``: rank -> source of the latest search's passages (see ``resolve_sources``);
    ``seen``: the outputs of this task's tool calls, which every cited source must name (see
    ``unseen_sources``; nothing is checked before the task has seen anything)."""
    try:
        obj = json.loads(text)
    except ValueError:
        start = text.find("{")
        try:
            obj = json.JSONDecoder().raw_decode(text, start)[0] if start >= 0 else None
        except ValueError:
            obj = None
    if not isinstance(obj, dict) or not isinstance(obj.get("action"), str):
        # The content is what the task ends with when the repair fails too: the answer's text
        # (cut off, or without an action), never the decision's raw JSON. A reply that opens a
        # decision object but holds no answer (a tool action cut off by max_tokens, as the 0.5B
        # writes when it pastes a whole observation into its query) has said nothing.
        said = answer_text(text, obj)
        if said is None:
            said = "" if text.lstrip().startswith("{") else text.strip()
        return Decision(
            said, problem='the reply is not a JSON object with an "action" (it may have been cut off: keep it short)'
        )
    action = obj["action"]
    if action == ANSWER:
        answer = answer_text(text, obj)
        if not answer:
            return Decision("", problem='an "answer" action needs a non-empty "answer" string')
        sources = resolve_sources(obj.get("sources"), numbered or {})
        content = with_sources(answer, sources)
        unseen = unseen_sources(sources, seen, numbered or {})
        if unseen:
            known = ", ".join(sorted(set((numbered or {}).values()))[:8])
            hint = f" (the latest search's passages are from: {known})" if known else ""
            return Decision(
                content,
                problem=f"sources must name passages this task retrieved; {', '.join(unseen[:3])} is not one{hint}",
            )
        return Decision(content)
    args = obj.get("arguments")
    if args is None:  # flat form: the arguments beside the action
        args = {k: v for k, v in obj.items() if k != "action"}
    if not isinstance(args, dict):
        return Decision(
            "", [ToolCall(f"{JSON_CALL_PREFIX}0", action, {})], problem=f'"arguments" of {action} must be a JSON object'
        )
    return Decision("", [ToolCall(f"{JSON_CALL_PREFIX}0", action, args)])


_ANSWER_FIELD = re.compile(r'"answer"\s*:\s*"')


def answer_text(text: str, obj: Any = None) -> str | None:
    """The "answer" string of a decision-shaped reply (``obj``: the reply parsed, when it parsed),
    stripped; the text up to the cut when max_tokens cut it off inside the string; the inner
    answer when a model wrapped a whole decision in it. None when the reply has no answer field."""
    if isinstance(obj, dict):
        said = obj.get("answer")
        if not isinstance(said, str):
            return None
    else:
        m = _ANSWER_FIELD.search(text)
        if m is None:
            return None
        rest = text[m.end() :]
        said = None
        # The string as far as it is valid JSON: closed at its quote, or cut (a partial escape
        # such as "\u00" at the end is dropped).
        for end in (_string_end(rest), *range(len(rest), max(-1, len(rest) - 7), -1)):
            try:
                said = json.loads('"' + rest[:end] + '"')
                break
            except ValueError:
                continue
        if said is None:
            return None
    said = said.strip()
    if said.startswith("{") and _ANSWER_FIELD.search(said):
        inner = answer_text(said, _json_object(said))
        return said if inner is None else inner
    return said


def _string_end(s: str) -> int:
    """Index of the first unescaped quote in ``s`` (the end of a JSON string's body), or len(s)."""
    i = 0
    while i < len(s):
        if s[i] == "\\":
            i += 2
            continue
        if s[i] == '"':
            return i
        i += 1
    return len(s)


def _json_object(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


_PASSAGE_NUMBER = re.compile(r"^\[?\s*(?:passage\s*)?(\d{1,3})\s*\]?$", re.I)
# A passage's head line copied whole, as the search result shows it: "[1] (a.html, score 0.676)";
# or its source and score in brackets: "[a.html, score 0.506]".
_PASSAGE_HEAD_COPY = re.compile(r"^\[\s*(\d{1,3})\s*\]\s*\((.*?)(?:,\s*score\s*-?[\d.]+)?\)$", re.I)
_SOURCE_WITH_SCORE = re.compile(r"^[\[(]\s*(.*?),\s*score\s*-?[\d.]+\s*[\])]$", re.I)


def resolve_sources(sources: Any, numbered: Mapping[int, str]) -> Any:
    """Sources written as the passage numbers a search result shows ("[1]", "2") become those
    passages' sources (small models cite "[1]", which names no document), and a passage's head
    line copied whole ("[1] (a.html, score 0.676)") becomes the source it names."""
    if not isinstance(sources, list):
        return sources
    out = []
    for s in sources:
        if not isinstance(s, str):
            out.append(s)
            continue
        text = s.strip()
        if m := _PASSAGE_HEAD_COPY.match(text):
            out.append(m.group(2).strip() or numbered.get(int(m.group(1)), s))
        elif m := _SOURCE_WITH_SCORE.match(text):
            out.append(m.group(1).strip())
        elif m := _PASSAGE_NUMBER.match(text):
            out.append(numbered.get(int(m.group(1)), s))
        else:
            out.append(s)
    return out


def unseen_sources(sources: Any, seen: Sequence[str], numbered: Mapping[int, str]) -> list[str]:
    """The cited sources that no tool output of the task names: a passage number past the last
    passage shown ("[9]" after 8 passages), or a document never retrieved. Empty when the task has seen nothing yet
    (nothing to check against)."""
    if not isinstance(sources, list) or not seen:
        return []
    out = []
    for s in sources:
        if not isinstance(s, str) or not s.strip():
            continue
        name = s.strip()
        if _PASSAGE_NUMBER.match(name) or not any(name in text for text in seen):
            out.append(name)
    return list(dict.fromkeys(out))


def validate(value: Any, schema: Mapping[str, Any], path: str = "arguments") -> list[str]:
    """Errors of ``value`` against a portable-subset JSON schema (what repair turns report)."""
    errors: list[str] = []
    if "anyOf" in schema:
        if all(validate(value, alt, path) for alt in schema["anyOf"]):
            errors.append(f"{path} matches none of the allowed forms")
        return errors
    kind = schema.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
    }
    if isinstance(kind, str) and kind in checks and not checks[kind](value):
        return [f"{path} must be {'an' if kind[0] in 'aeiou' else 'a'} {kind}, got {json.dumps(value)[:80]}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path} must be one of {json.dumps(schema['enum'])}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{path} must be at least {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{path} must be at most {schema['maximum']}")
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for name in schema.get("required") or ():
            if name not in value:
                errors.append(f"{path}.{name} is required")
            elif isinstance(value[name], str) and not value[name].strip():
                errors.append(f"{path}.{name} must not be empty")
        for name, sub in value.items():
            if name in props:
                errors += validate(sub, props[name], f"{path}.{name}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}.{name} is not a parameter (known: {', '.join(props) or 'none'})")
    if isinstance(value, list):
        if "minItems" in schema and len(value) < schema["minItems"]:
            errors.append(f"{path} needs at least {schema['minItems']} item(s)")
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                errors += validate(item, items, f"{path}[{i}]")
    return errors


def problem(calls: Iterable[ToolCall], content: str, choice: Offer, schemas: Sequence[Mapping[str, Any]]) -> str | None:
    """Why a decision cannot be used as it is, or None."""
    calls = list(calls)
    by_name = {s["function"]["name"]: s for s in schemas}
    if not calls:
        if not choice.may_answer:
            return f"you may not answer yet: {choice.why}"
        return None
    for c in calls:
        if c.name not in choice.tools:
            if c.name in by_name:
                return (
                    f"{c.name} cannot be called now ({choice.why or 'not offered'}); you may call: "
                    f"{', '.join(choice.tools) or 'nothing'}"
                )
            return f"there is no tool {c.name!r}; the tools are: {', '.join(by_name or choice.tools) or 'none'}"
        if c.name not in by_name:
            continue
        errors = validate(c.arguments, _parameters(by_name[c.name]), f"{c.name}.arguments")
        if errors:
            return "; ".join(errors[:5])
    return None


def _same_question(a: str, b: str) -> bool:
    """Equal up to case, spacing and closing punctuation ("What is X?" == "what is x")."""

    def norm(t: str) -> str:
        return " ".join(t.casefold().split()).rstrip("?.!: ")

    return norm(a) == norm(b)


def own_goal_delegation(calls: Iterable[ToolCall], spawners: Iterable[str], goal: str) -> str | None:
    """Why a spawn call that hands the task's own question to a sub-agent cannot be used, or None.
    Small models delegate the whole question (seen in issue 38 on defaults and on questions the
    documents do not answer): the sub-agent runs the same search again one level down, and on a
    question nobody can answer each level fans out until the budget ends the task."""
    names = set(spawners)
    for c in calls:
        if c.name in names and any(_same_question(g, goal) for g in goals_of(c.arguments)):
            return (
                f"{c.name} was given the whole question, which a sub-agent would only search again: "
                "delegate parts of it (one thing to compare, one hop), or search or answer yourself "
                "(say that the documents do not say it when the passages do not)"
            )
    return None


def repair_messages(reply_text: str, why: str, settings: DecisionSettings) -> list[dict[str, Any]]:
    """The transient turn that shows the model its unusable reply and why (never checkpointed)."""
    again = (
        "Reply again with one corrected JSON object."
        if settings.mode == "JSONSchema"
        else "Reply again with a corrected tool call or your answer."
    )
    return [
        {"role": "assistant", "content": reply_text or "(empty reply)"},
        {"role": "user", "content": f"That reply cannot be used: {why}. {again}"},
    ]
