"""What the model client sends so any vLLM-compatible engine accepts it (pure, no I/O).

- Tool schemas in the portable subset: a strict validator refuses ``additionalProperties`` given
  as a schema object (HTTP 400), so such objects are dropped (JSON Schema's default then allows
  any extra property, the closest portable meaning; booleans stay). Done once per schema list:
  the loop passes the same list on every call of a task.
- ``max_tokens`` within the served context: an engine started with a small ``--max-model-len``
  (1,024 by default on some) answers every call whose prompt plus ``max_tokens`` exceeds it with
  a non-retryable 400. The client knows the served context (``max_model_len`` in ``/v1/models``)
  and roughly the prompt size, so it caps ``max_tokens`` to the room left; when the engine still
  refuses (the estimate was short), its 400 names the exact prompt size and the call is retried
  once with the exact room; when no room is left, the call fails with a message that names the
  settings to change.
- Only the engine's own count refuses a call. The estimate (characters / 3) errs high on purpose,
  by about a third on English text, so a prompt filling 75-100 % of the context looks like one
  that leaves no room. Where the estimate leaves too little, the guard asks the engine's
  ``POST /tokenize`` (vLLM's; the exact count under the chat template) and caps to that; an engine
  without one gets the call uncapped, and its 400 (``refit``) names the count.
"""

from __future__ import annotations

import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from agentfleet_runtime.core import fastjson
from agentfleet_runtime.core.errors import ModelError

# Fewer output tokens than this cannot hold a tool call or a short answer: fail instead.
MIN_OUTPUT_TOKENS = 16
# Characters per token for the prompt estimate: low on purpose (real BPE averages ~4), so the
# cap errs towards room for the prompt; the engine's 400 corrects a short estimate exactly.
CHARS_PER_TOKEN = 3.0

# Two wordings: vLLM before 0.2x ("... (N in the messages, M in the completion)") and vLLM 0.2x-0.32
# ("However, [you requested M output tokens and] your prompt contains [at least] N input tokens").
# "at least" is vLLM's bound after truncating its count: the prompt is N tokens or more.
_CONTEXT_ERROR = re.compile(
    r"maximum context length is (\d+) tokens.*?"
    r"(?:\((\d+) in the messages|your prompt contains (?:at least )?(\d+) input tokens)",
    re.S,
)
# llama.cpp's llama-server words it the other way round.
_LLAMACPP_CONTEXT_ERROR = re.compile(r"request \((\d+) tokens\) exceeds the available context size \((\d+) tokens\)")
_SETTINGS = (
    "raise the served context (ModelReplicaSet spec.engine.maxModelLen, vLLM --max-model-len) or lower "
    "model.maxOutputTokens / the task's history"
)


def _portable(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _portable(v) for k, v in schema.items() if not (k == "additionalProperties" and isinstance(v, dict))}
    if isinstance(schema, list):
        return [_portable(v) for v in schema]
    return schema


class PortableTools:
    """Tool lists in the portable subset, converted once per distinct list object."""

    def __init__(self, size: int = 256) -> None:
        self._memo: dict[int, tuple[list[dict[str, Any]], list[dict[str, Any]]]] = {}
        self._size = size

    def __call__(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        hit = self._memo.get(id(tools))
        if hit is not None and hit[0] is tools:
            return hit[1]
        out = _portable(tools)
        if len(self._memo) >= self._size:
            self._memo.pop(next(iter(self._memo)))
        self._memo[id(tools)] = (tools, out)  # holding ``tools`` keeps its id from being reused
        return out


_TOOLS_CHARS: dict[int, tuple[Any, int]] = {}


def _chars(message: Any) -> int:
    if not isinstance(message, dict):
        return len(str(message))
    content = message.get("content")
    n = 8 + (len(content) if isinstance(content, str) else len(fastjson.dumpb(content)) if content else 0)
    calls = message.get("tool_calls")
    return n + (len(fastjson.dumpb(calls)) if calls else 0)


def prompt_estimate(body: dict[str, Any]) -> int:
    """Tokens of a chat body's messages and tools, estimated from their text size (no full
    serialisation: this runs on every call; the tools' size is kept per list object)."""
    chars = sum(_chars(m) for m in body.get("messages") or ())
    tools = body.get("tools")
    if tools:
        hit = _TOOLS_CHARS.get(id(tools))
        if hit is None or hit[0] is not tools:
            if len(_TOOLS_CHARS) > 256:
                _TOOLS_CHARS.clear()
            hit = _TOOLS_CHARS[id(tools)] = (tools, len(fastjson.dumpb(tools)))
        chars += hit[1]
    return int(chars / CHARS_PER_TOKEN) + 1


class ContextOverflow(ModelError):
    """No room for output in the served context: retrying cannot help, a setting must change."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=400, retryable=False)


def capped_max_tokens(configured: int, context: int | None, prompt_tokens: int) -> int:
    """``configured`` capped to the room the served context leaves after the prompt."""
    if context is None:
        return configured
    room = context - prompt_tokens
    if room < min(configured, MIN_OUTPUT_TOKENS):
        raise ContextOverflow(
            f"the prompt (~{prompt_tokens} tokens) leaves {max(0, room)} of the served context's {context} tokens for "
            "the answer, "
            f"fewer than {min(configured, MIN_OUTPUT_TOKENS)}: {_SETTINGS}"
        )
    return min(configured, room)


def tokenize_url(url: str) -> str:
    """vLLM's ``/tokenize`` beside ``/v1`` on the server root, from a base or a chat URL."""
    return url.rstrip("/").removesuffix("/chat/completions").removesuffix("/v1") + "/tokenize"


def tokenize_request(body: dict[str, Any]) -> dict[str, Any]:
    """The chat body's prompt part as vLLM's ``TokenizeChatRequest`` (tools count too)."""
    out = {"model": body.get("model"), "messages": body.get("messages") or [], "add_generation_prompt": True}
    if body.get("tools"):
        out["tools"] = body["tools"]
    return out


def token_count(answer: Any) -> int | None:
    """``count`` of a ``/tokenize`` answer (vLLM's shape), else None: llama-server's ``/tokenize``
    takes raw text without the chat template, so its answer is no count of the prompt."""
    value = answer.get("count") if isinstance(answer, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def context_error(text: str) -> tuple[int, int] | None:
    """(served context, prompt tokens) from vLLM's or llama-server's 400 for a too-long request,
    else None."""
    m = _CONTEXT_ERROR.search(text)
    if m:
        return int(m.group(1)), int(m.group(2) or m.group(3))
    m = _LLAMACPP_CONTEXT_ERROR.search(text)
    return (int(m.group(2)), int(m.group(1))) if m else None


# vLLM started without a tool-call parser refuses ``tool_choice: auto`` with this 400 (0.32's
# wording: '"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set').
# The body is JSON, so the quotes arrive escaped.
_NO_AUTO_TOOL_CHOICE = re.compile(r'auto\\?"? tool choice requires --enable-auto-tool-choice')


def without_auto_tool_choice(body: dict[str, Any], error_text: str) -> dict[str, Any] | None:
    """The body again with ``tool_choice: none`` when the engine refused ``auto`` for want of a
    tool-call parser, else None. vLLM still renders the tools into the prompt under ``none``
    (unless started with --exclude-tools-when-tool-choice-none), so the model writes its call as
    JSON in the text, which the loop reads as a call (textcalls.py): the fleet keeps working on a
    ModelReplicaSet whose ``spec.engine.extraArgs`` lack ``--enable-auto-tool-choice
    --tool-call-parser <parser>``, with text calls instead of the engine's parsed ones."""
    if body.get("tool_choice") != "auto" or not _NO_AUTO_TOOL_CHOICE.search(error_text):
        return None
    return {**body, "tool_choice": "none"}


def served_context(models_body: Any, model: str) -> int | None:
    """``max_model_len`` of ``model`` in a ``/v1/models`` answer (vLLM and most engines give it)."""
    data = models_body.get("data") if isinstance(models_body, dict) else None
    for entry in data or ():
        if isinstance(entry, dict) and entry.get("id") == model:
            value = entry.get("max_model_len")
            return int(value) if isinstance(value, int) and value > 0 else None
    return None


class ContextGuard:
    """Keeps each call's ``max_tokens`` inside the served context of the replica it goes to.

    ``fetch_models(key)`` returns a ``/v1/models`` body (or raises); its answer is kept per key
    (replica), and a failed look-up is tried again after ``retry_seconds`` (no cap meanwhile:
    an engine without ``/v1/models`` gets today's behaviour plus the exact retry on a 400).
    ``tokenize(key, body)`` returns the engine's ``/tokenize`` answer for a chat body (or raises);
    it is asked only when the estimate leaves too little room, and a replica without one is not
    asked again for ``retry_seconds``."""

    def __init__(
        self,
        model: str,
        fetch_models: Callable[[str], Awaitable[Any]],
        retry_seconds: float = 60.0,
        tokenize: Callable[[str, dict[str, Any]], Awaitable[Any]] | None = None,
    ) -> None:
        self.model = model
        self._fetch = fetch_models
        self._tokenize = tokenize
        self._known: dict[str, tuple[int | None, float]] = {}
        self._no_tokenize: dict[str, float] = {}  # key -> when its /tokenize last failed
        self.retry_seconds = retry_seconds
        self.capped = 0  # calls whose max_tokens was lowered (for tests and metrics)
        self.counted = 0  # calls whose prompt the engine counted (its /tokenize)

    async def context(self, key: str) -> int | None:
        now = time.monotonic()
        hit = self._known.get(key)
        if hit is not None and (hit[0] is not None or now - hit[1] < self.retry_seconds):
            return hit[0]
        try:
            value = served_context(await self._fetch(key), self.model)
        except Exception:  # noqa: BLE001 - any failure means "unknown": send uncapped
            value = None
        self._known[key] = (value, now)
        return value

    async def count(self, key: str, body: dict[str, Any]) -> int | None:
        """The engine's own count of the body's prompt (its ``/tokenize``), or None."""
        now = time.monotonic()
        failed = self._no_tokenize.get(key)
        if self._tokenize is None or (failed is not None and now - failed < self.retry_seconds):
            return None
        try:
            value = token_count(await self._tokenize(key, body))
        except Exception:  # noqa: BLE001 - no /tokenize (404) or unreachable: the engine's 400 will count
            value = None
        if value is None:
            self._no_tokenize[key] = now
        return value

    async def fit(self, key: str, body: dict[str, Any]) -> dict[str, Any]:
        """``body``, or a copy with ``max_tokens`` capped to the room the context leaves. Raises
        ``ContextOverflow`` only on the engine's own count: where the estimate leaves too little
        room, the engine's ``/tokenize`` decides, else the call goes uncapped and its 400 decides."""
        context = await self.context(key)
        configured = int(body.get("max_tokens") or 0)
        if context is None or not configured:
            return body
        estimate = prompt_estimate(body)
        if context - estimate >= min(configured, MIN_OUTPUT_TOKENS):
            capped = min(configured, context - estimate)
        else:
            exact = await self.count(key, body)
            if exact is None:
                return body  # refit() reads the engine's count from its 400
            self.counted += 1
            capped = capped_max_tokens(configured, context, exact)
        if capped == configured:
            return body
        self.capped += 1
        return {**body, "max_tokens": capped}

    def refit(self, key: str, body: dict[str, Any], error_text: str) -> dict[str, Any] | None:
        """After a 400 for a too-long request: a copy that fits exactly, or None when the error
        was something else. Raises ``ContextOverflow`` when nothing fits."""
        found = context_error(error_text)
        if found is None:
            return None
        context, prompt_tokens = found
        self._known[key] = (context, time.monotonic())
        configured = int(body.get("max_tokens") or 0) or context
        capped = capped_max_tokens(configured, context, prompt_tokens)
        if capped >= configured and body.get("max_tokens"):
            return None  # the request fitted by the engine's own count: some other 400
        self.capped += 1
        return {**body, "max_tokens": capped}


# The keys of a JSON schema every engine's schema-to-grammar accepts (docs/engines.md).
_PORTABLE_KEYS = {
    "type",
    "properties",
    "required",
    "items",
    "enum",
    "description",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "anyOf",
    "title",
}


def portable(schema: Any) -> Any:
    """A tool's parameter schema cut down to what every engine's schema-to-grammar accepts."""
    if isinstance(schema, list):
        return [portable(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for k, v in schema.items():
        if k == "properties" and isinstance(v, dict):
            out[k] = {name: portable(sub) for name, sub in v.items()}
        elif k in _PORTABLE_KEYS:
            out[k] = portable(v)
    if out.get("type") == "object":
        out["additionalProperties"] = False
    return out
