"""The model-call seam: a ``ModelClient`` protocol and its OpenAI-compatible implementation.

Every model call of the agent loop goes through ``ModelClient.complete``. The request carries the
task's identity (task, root, session, step, kind) so a routing client (sticky prefix-cache
routing, failover, hedging, rate limits, model tiers) can wrap or replace ``OpenAIChatClient``
without the loop changing.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import aiohttp

from agentfleet_runtime.core import fastjson, timeouts, tracing
from agentfleet_runtime.core.errors import ModelError  # noqa: F401 - part of this module's interface
from agentfleet_runtime.core.types import ModelReply, ToolCall, Usage
from agentfleet_runtime.model.http1 import ConnectionFailed, Http1Client
from agentfleet_runtime.model.textcalls import coerce_arguments
from agentfleet_runtime.model.wire import (
    ContextGuard,
    PortableTools,
    ToolChoiceGuard,
    tokenize_request,
    tokenize_url,
)

StepKind = Literal["step", "summary", "tool_arguments"]


# Not frozen: one is built per model call, and a frozen dataclass's __init__ (object.__setattr__
# per field) cost twice as much. Treat it as immutable all the same.
@dataclass(slots=True)
class ModelRequest:
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)  # OpenAI "tools" entries; empty = none
    task_id: str = ""
    root_id: str = ""
    session: str = ""
    tenant: str = ""  # for per-tenant rate limits in a routing client
    step: int = 0
    kind: StepKind = "step"
    timeout: float | None = None  # seconds left for this call (the loop passes the task's remaining time)
    tool_choice: str = "auto"  # "required" when the fleet's tool policy forbids answering at this step
    response_format: dict[str, Any] | None = (
        None  # a JSON-schema decision (decisions.py), for engines with grammar decoding
    )
    # At most this many output tokens (the spend guard's cap, model/spend.py); None: the client's own.
    max_tokens: int | None = None


class ModelClient(Protocol):
    async def complete(self, request: ModelRequest) -> ModelReply: ...

    async def close(self) -> None: ...


def parse_chat_completion(body: dict[str, Any]) -> ModelReply:
    """Normalise an OpenAI chat-completion body; tolerant of servers that omit fields."""
    choices = body.get("choices") or []
    if not choices:
        raise ModelError("model answered without choices", retryable=True)
    choice = choices[0]
    msg = choice.get("message") or {}
    calls = []
    for i, tc in enumerate(msg.get("tool_calls") or []):
        fn = tc.get("function") or {}
        name = fn.get("name")
        if not name:
            continue
        calls.append(
            ToolCall(id=tc.get("id") or f"call-{i}", name=name, arguments=coerce_arguments(fn.get("arguments")))
        )
    u = body.get("usage") or {}
    return ModelReply(
        content=msg.get("content") or "",
        tool_calls=tuple(calls),
        usage=Usage(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0), calls=1),
        finish_reason=choice.get("finish_reason") or "stop",
        model=body.get("model") or "",
    )


def request_options(
    req: ModelRequest, send_tools: bool, portable: Callable[[list[dict[str, Any]]], list[dict[str, Any]]] | None = None
) -> dict[str, Any]:
    """tools, tool_choice and response_format of a chat-completion body (every client's); ``portable``
    keeps the tool schemas to the subset strict validators accept (modelwire.PortableTools)."""
    out: dict[str, Any] = {}
    if req.tools and send_tools:
        out["tools"] = portable(req.tools) if portable is not None else req.tools
        out["tool_choice"] = req.tool_choice
    if req.response_format is not None:
        out["response_format"] = req.response_format
    return out


def backoff_delay(attempt: int, base: float = 0.2, cap: float = 5.0, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff: uniform in [0, min(cap, base * 2^attempt)]."""
    return (rng or random).uniform(0, min(cap, base * (2**attempt)))


class OpenAIChatClient:
    """POST {base_url}/chat/completions with retries on 5xx, 429, timeouts and connection errors."""

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 2,
        max_output_tokens: int = 1024,
        temperature: float = 0.0,
        send_tools: bool = True,
        observer: Any = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_output_tokens = max_output_tokens
        self.temperature = temperature
        self.send_tools = send_tools
        self.observer = observer  # metrics hook: observer(outcome, seconds) and observer.retry()
        self._session: aiohttp.ClientSession | None = None
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        # Plain http (in-cluster model servers): the lean keep-alive client, a fraction of
        # aiohttp's CPU per call (http1.py); https and anything else: aiohttp.
        self._h1 = Http1Client(self.url, self._headers) if self.url.startswith("http://") else None
        self._portable = PortableTools()
        self._context = ContextGuard(model, self._models, tokenize=self._tokenize)
        self._tool_choice = ToolChoiceGuard()

    async def _models(self, _key: str) -> Any:
        url = self.url.removesuffix("/chat/completions") + "/models"
        async with self._http().get(url, headers=self._headers, timeout=aiohttp.ClientTimeout(total=5.0)) as resp:
            resp.raise_for_status()
            return await resp.json(content_type=None)

    async def _tokenize(self, _key: str, body: dict[str, Any]) -> Any:
        """The engine's ``POST /tokenize`` for the body's prompt (modelwire.ContextGuard)."""
        url, request, timeout = tokenize_url(self.url), tokenize_request(body), aiohttp.ClientTimeout(total=5.0)
        async with self._http().post(url, json=request, headers=self._headers, timeout=timeout) as resp:
            resp.raise_for_status()
            return await resp.json(content_type=None)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # No connection cap: concurrency is bounded by the worker's task slots.
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300))
        return self._session

    async def close(self) -> None:
        if self._h1 is not None:
            await self._h1.close()
        if self._session is not None:
            await self._session.close()

    async def _post(self, payload: bytes, timeout: float) -> tuple[int, bytes]:
        trace = tracing.headers()  # traceparent while a chat span is current: the engine joins the task's trace
        if self._h1 is not None:
            extra = "".join(f"{k}: {v}\r\n" for k, v in trace.items()).encode("latin-1") if trace else b""
            with timeouts.timeout(timeout):
                return await self._h1.post(payload, extra)
        headers = {**self._headers, **trace} if trace else self._headers
        limit = aiohttp.ClientTimeout(total=timeout)
        async with self._http().post(self.url, data=payload, headers=headers, timeout=limit) as resp:
            return resp.status, await resp.read()

    def _body(self, req: ModelRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": req.messages,
            "max_tokens": min(self.max_output_tokens, req.max_tokens or self.max_output_tokens),
            "temperature": self.temperature,
        }
        body.update(request_options(req, self.send_tools, self._portable))
        return self._tool_choice.apply(self.url, body)

    async def complete(self, request: ModelRequest) -> ModelReply:
        body = await self._context.fit(self.url, self._body(request))  # max_tokens within the served context
        payload = fastjson.dumpb(body)  # the whole history, every step: the fast encoder
        deadline = time.monotonic() + (
            request.timeout if request.timeout is not None else self.timeout * (self.max_retries + 1)
        )
        last: ModelError | None = None
        for attempt in range(self.max_retries + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            started = time.monotonic()
            try:
                status, raw = await self._post(payload, min(self.timeout, left))
                if (
                    status == 400
                    and (refit := self._context.refit(self.url, body, raw[:2000].decode("utf-8", errors="replace")))
                    is not None
                ):
                    body, payload = refit, fastjson.dumpb(refit)  # the engine named the exact room left
                    status, raw = await self._post(payload, max(0.001, min(self.timeout, deadline - time.monotonic())))
                if status == 400 and (
                    plain := self._tool_choice.refused(self.url, body, raw[:2000].decode("utf-8", errors="replace"))
                ):
                    body, payload = plain, fastjson.dumpb(plain)
                    status, raw = await self._post(payload, max(0.001, min(self.timeout, deadline - time.monotonic())))
                if status >= 400:
                    retryable = status >= 500 or status in (408, 409, 429)
                    text = raw[:1200].decode("utf-8", errors="replace")
                    raise ModelError(
                        f"model server answered {status}: {text[:300]}", status=status, retryable=retryable
                    )
                try:
                    reply = parse_chat_completion(fastjson.loads(raw))
                except ValueError as e:
                    raise ModelError(f"model server sent invalid JSON: {e}", retryable=True) from e
                self._observe("ok", time.monotonic() - started)
                return reply
            except ModelError as e:
                last = e
                self._observe("error", time.monotonic() - started)
                if not e.retryable:
                    raise
            except TimeoutError:
                last = ModelError(f"model call timed out after {time.monotonic() - started:.1f}s", retryable=True)
                self._observe("timeout", time.monotonic() - started)
            except (aiohttp.ClientError, ConnectionFailed) as e:
                last = ModelError(f"model server unreachable: {e}", retryable=True)
                self._observe("error", time.monotonic() - started)
            if attempt < self.max_retries:
                if self.observer is not None:
                    self.observer.retry()
                await asyncio.sleep(min(backoff_delay(attempt), max(0.0, deadline - time.monotonic())))
        raise last or ModelError("model call had no time left", retryable=True)

    def _observe(self, outcome: str, seconds: float) -> None:
        if self.observer is not None:
            self.observer(outcome, seconds)
