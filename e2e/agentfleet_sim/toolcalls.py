"""Seeded, schema-valid tool calls, so the runtime's tool and sub-agent paths run on the simulator.

``decide_tool_call`` picks, from the prompt's seed, whether this call answers with a tool call
and which tool; ``arguments_for`` writes arguments that validate against the tool's JSON schema
(the subset agent tools use: object/properties/required, string, integer, number, boolean,
array with items and min/maxItems, enum, anyOf, min/max). Same prompt, same call: a hedged or
retried call gets the same answer from every replica, as with greedy decoding.
"""

from __future__ import annotations

import json
import random
from typing import Any

from .tokenizer import output_word

_MAX_ARRAY = 3


def arguments_for(schema: Any, rng: random.Random, seed: int = 0) -> Any:
    """A value valid against ``schema`` (a dict; anything else is treated as 'any')."""
    if not isinstance(schema, dict):
        return "x"
    if "enum" in schema and schema["enum"]:
        return rng.choice(list(schema["enum"]))
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return arguments_for(rng.choice(schema[key]), rng, seed)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties") or {}
        required = set(schema.get("required") or ())
        out: dict[str, Any] = {}
        for name, sub in props.items():
            if name in required or rng.random() < 0.5:
                out[name] = arguments_for(sub, rng, seed)
        return out
    if kind == "array":
        lo = int(schema.get("minItems", 1))
        hi = max(lo, min(int(schema.get("maxItems", _MAX_ARRAY)), _MAX_ARRAY))
        return [arguments_for(schema.get("items", {"type": "string"}), rng, seed) for _ in range(rng.randint(lo, hi))]
    if kind == "integer":
        lo = int(schema.get("minimum", 1))
        hi = int(schema.get("maximum", max(lo, 10)))
        return rng.randint(lo, max(lo, hi))
    if kind == "number":
        lo = float(schema.get("minimum", 0.0))
        hi = float(schema.get("maximum", lo + 1.0))
        return rng.uniform(lo, max(lo, hi))
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    words = " ".join(output_word(seed, rng.randrange(1 << 20)) for _ in range(rng.randint(2, 5)))
    lo, hi = int(schema.get("minLength", 0)), schema.get("maxLength")
    words = words.ljust(lo, "x")
    return words[: int(hi)] if hi is not None else words


def tool_results_so_far(messages: list[dict[str, Any]]) -> int:
    return sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "tool")


def decide_tool_call(body: dict[str, Any], seed: int, rate: float, steps: int) -> dict[str, Any] | None:
    """The OpenAI ``tool_calls`` entry this call answers with, or None for a text answer."""
    tools = [t for t in body.get("tools") or () if isinstance(t, dict) and isinstance(t.get("function"), dict)]
    if not tools or rate <= 0.0 or body.get("tool_choice") == "none":
        return None
    if tool_results_so_far(body.get("messages") or []) >= steps:
        return None
    rng = random.Random(seed)
    if rng.random() >= rate:
        return None
    fn = rng.choice(tools)["function"]
    args = arguments_for(fn.get("parameters") or {"type": "object", "properties": {}}, rng, seed)
    return {
        "id": f"call-{seed & 0xFFFFFFFF:08x}",
        "type": "function",
        "function": {"name": str(fn.get("name", "")), "arguments": json.dumps(args, separators=(",", ":"))},
    }
