"""Pure parts of MCP tools: what an MCP server's listing becomes in front of the model.

A server's tool names, descriptions, schemas and results are the server's word, not the spec
author's: names are rewritten into ``<spec name>_<tool>`` (so they can never shadow another tool
and stay inside what every engine accepts), descriptions and schemas are capped in size, schemas
are cut to the portable subset every other tool's schema is cut to, and the allow list decides
which tools exist at all.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from agentfleet_runtime.model.wire import portable

# OpenAI-style function names: what engines (vLLM, llama-server) and the spec's tool policies accept.
MAX_NAME = 64
MAX_DESCRIPTION_CHARS = 1024
# A schema bigger than this is a prompt cost paid on every model call of every task: such a tool is left out.
MAX_SCHEMA_CHARS = 8192
_NOT_NAME = re.compile(r"[^A-Za-z0-9_-]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def tool_name(prefix: str, remote: str) -> str:
    """The name the model calls a server's tool by: ``<prefix>_<remote>``, other characters as ``_``.

    A name past 64 characters keeps its head and gets a hash of the whole, so two long names that
    share a head still differ."""
    name = f"{prefix}_{_NOT_NAME.sub('_', remote)}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(remote.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9]}_{digest}"


def allowed(remote: str, allow: Sequence[str]) -> bool:
    """An empty allow list admits every listed tool; otherwise only the names it spells out."""
    return not allow or remote in allow


def clean_text(text: str | None, limit: int) -> str:
    """Server text shown to the model: control characters dropped, cut at ``limit``."""
    text = _CONTROL.sub("", text or "").strip()
    return text if len(text) <= limit else text[:limit] + " [cut]"


@dataclass(frozen=True, slots=True)
class Entry:
    name: str  # what the model calls
    remote: str  # what the server calls it
    description: str
    parameters: dict[str, Any]
    side_effects: bool


def catalog(
    prefix: str,
    listed: Iterable[tuple[str, str | None, dict[str, Any] | None]],
    *,
    allow: Sequence[str] = (),
    read_only: Sequence[str] = (),
    max_tools: int = 32,
    taken: Iterable[str] = (),
) -> tuple[list[Entry], list[str]]:
    """The tools offered from a server's listing of (name, description, input schema), and why
    each other listed tool was left out. ``taken``: names of the fleet's other tools, never shadowed."""
    entries: list[Entry] = []
    skipped: list[str] = []
    names = set(taken)
    for remote, description, schema in listed:
        if not allowed(remote, allow):
            skipped.append(f"{remote}: not in allowTools")
            continue
        if len(entries) >= max_tools:
            skipped.append(f"{remote}: past maxTools ({max_tools})")
            continue
        params = portable(schema if isinstance(schema, dict) else {"type": "object", "properties": {}})
        if params.get("type") != "object":
            params = {"type": "object", "properties": {}, "additionalProperties": False}
        if len(json.dumps(params)) > MAX_SCHEMA_CHARS:
            skipped.append(f"{remote}: input schema over {MAX_SCHEMA_CHARS} characters")
            continue
        name = tool_name(prefix, remote)
        if name in names:
            skipped.append(f"{remote}: its name {name} is taken")
            continue
        names.add(name)
        entries.append(
            Entry(name, remote, clean_text(description, MAX_DESCRIPTION_CHARS), params, remote not in read_only)
        )
    return entries, skipped


def result_text(content: Iterable[Any], structured: Any, limit: int) -> str:
    """A tool result's content blocks as the observation's text: text as is, other blocks named.

    Stops collecting at ``limit`` characters: the ToolBox cuts the observation there anyway."""
    parts: list[str] = []
    size = 0
    for block in content:
        kind = getattr(block, "type", None)
        if kind == "text":
            part = block.text
        elif kind == "resource":
            res = block.resource
            part = getattr(res, "text", None) or f"[resource {res.uri} ({getattr(res, 'mime_type', None) or 'binary'})]"
        elif kind == "resource_link":
            part = f"[resource link {block.uri}]"
        else:  # image, audio: the model reads text
            part = f"[{kind} content ({getattr(block, 'mime_type', None) or 'unknown type'}) not shown]"
        parts.append(part)
        size += len(part)
        if size > limit:
            break
    if not parts and structured is not None:
        parts.append(json.dumps(structured, ensure_ascii=False)[: limit + 1])
    return "\n".join(parts)
