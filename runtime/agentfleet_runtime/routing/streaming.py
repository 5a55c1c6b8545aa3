"""Streamed chat completions: server-sent events in, one chat-completion body out (pure).

A streamed call (``stream: true`` with ``stream_options.include_usage``) answers with
``data: {chunk}`` lines, then ``data: [DONE]``. ``SseLines`` cuts the byte stream into those
payloads; ``StreamAccumulator`` folds the chunks into what a non-streamed call returns (content,
tool calls, finish reason, usage), so the rest of the client parses one shape. It reports the
first token (content or a tool call's first piece: the moment a hedge on time to first token can
stop waiting) and hands out each tool call as soon as its arguments are complete (the next call
began, or the stream finished), so a caller can start validating or running it before the answer
ends. ``delta_sink`` (a context variable) receives the text deltas of the call that won the race
to the first token, which is how the final answer reaches the task's event stream as it is
written.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentfleet_runtime.core import fastjson

# Receives (text) for each content delta of the current call's winning attempt; set per task by
# whoever wants the answer as it is written (the worker, for the task API's event stream).
delta_sink: contextvars.ContextVar[Callable[[str], None] | None] = contextvars.ContextVar("delta_sink", default=None)


class StreamError(ValueError):
    """The server reported an error inside the stream (the headers had already gone out)."""


class SseLines:
    """Feed bytes, get complete ``data:`` payloads (bytes); comments and other fields are skipped."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        out: list[bytes] = []
        while True:
            cut = self._buf.find(b"\n")
            if cut < 0:
                return out
            line, self._buf = self._buf[:cut].rstrip(b"\r"), self._buf[cut + 1 :]
            if line.startswith(b"data:"):
                out.append(line[5:].strip())


@dataclass
class _ToolCallParts:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)

    def as_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": "".join(self.arguments)},
        }


class StreamAccumulator:
    def __init__(self) -> None:
        self.content: list[str] = []
        self.calls: dict[int, _ToolCallParts] = {}
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] | None = None
        self.model = ""
        self.first_token = False
        self.produced = False  # the last chunk folded carried content or a tool call's piece
        self.done = False
        self._handed: set[int] = set()

    def feed(self, payload: bytes) -> tuple[bool, str]:
        """Fold one ``data:`` payload; returns (this chunk carried the first token, text delta)."""
        self.produced = False
        if payload == b"[DONE]":
            self.done = True
            return False, ""
        chunk = fastjson.loads(payload)
        if not isinstance(chunk, dict):
            return False, ""
        return self.feed_chunk(chunk)

    def feed_chunk(self, chunk: dict[str, Any]) -> tuple[bool, str]:
        """Fold one parsed chunk (in-process transports hand chunks, not bytes)."""
        if "error" in chunk and not chunk.get("choices"):
            err = chunk["error"]
            raise StreamError(str(err.get("message") if isinstance(err, dict) else err))
        self.model = chunk.get("model") or self.model
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        text = ""
        produced = False
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            piece = delta.get("content")
            if piece:
                self.content.append(piece)
                text += piece
                produced = True
            for tc in delta.get("tool_calls") or ():
                index = int(tc.get("index", 0))
                parts = self.calls.setdefault(index, _ToolCallParts())
                parts.id = tc.get("id") or parts.id
                fn = tc.get("function") or {}
                parts.name = fn.get("name") or parts.name
                if fn.get("arguments"):
                    parts.arguments.append(fn["arguments"])
                produced = True
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        self.produced = produced
        first = produced and not self.first_token
        self.first_token = self.first_token or produced
        return first, text

    def ready_tool_calls(self) -> list[dict[str, Any]]:
        """Tool calls complete since the last look: every call but the one still being written
        (all of them once the stream finished)."""
        finished = self.finish_reason is not None or self.done
        last = max(self.calls, default=-1)
        out = []
        for index in sorted(self.calls):
            if index in self._handed or (index == last and not finished):
                continue
            self._handed.add(index)
            out.append(self.calls[index].as_openai())
        return out

    def body(self) -> dict[str, Any]:
        """The non-streamed chat-completion body this stream amounts to."""
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.content) or None}
        if self.calls:
            message["tool_calls"] = [self.calls[i].as_openai() for i in sorted(self.calls)]
        body: dict[str, Any] = {
            "object": "chat.completion",
            "model": self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}],
        }
        if self.usage is not None:
            body["usage"] = self.usage
        return body


def stream_body(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` asking for a stream that ends with a usage chunk."""
    return {**body, "stream": True, "stream_options": {"include_usage": True}}


class StreamObserver:
    """What one streamed attempt reports while it runs: its first token, its text deltas, and
    each chunk (progress: how the router tells a stalled replica, stallwatch.py)."""

    __slots__ = ("on_first", "on_progress", "on_text")

    def __init__(
        self,
        on_first: Callable[[], None],
        on_text: Callable[[str], None] | None = None,
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        self.on_first = on_first
        self.on_text = on_text
        self.on_progress = on_progress

    def fold(self, acc: StreamAccumulator, first: bool, text: str) -> None:
        # Only a token is progress: a role or usage chunk can come from a replica that steps no more.
        if self.on_progress is not None and acc.produced:
            self.on_progress()
        if first:
            self.on_first()
        if text and self.on_text is not None:
            self.on_text(text)
