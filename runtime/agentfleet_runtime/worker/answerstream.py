"""The model's text, as it is written, on the task's event stream (``delta`` events).

``AnswerStreamer`` wraps a streaming ``ModelClient``: for each call of a task it sets the routing
client's ``delta_sink`` and appends the text to the task's events stream, the one the task API's
``GET /v1/tasks/{id}/events`` serves, so a client sees the final answer being written instead of
waiting for the ``finished`` event. Events: ``{"type": "delta", "step": n, "text": "..."}``. Only
the attempt that won the race to the first token writes; a call that fails over after some text
went out writes the new attempt's text after it (the ``finished`` event carries the answer as
stored). The first piece of a call goes out at once (time to first byte is the point); later pieces
are coalesced for ``coalesce_s`` so a long answer costs tens of stream entries, not one per token.
"""

from __future__ import annotations

import asyncio
from typing import Any

from agentfleet_runtime.core.types import ModelReply
from agentfleet_runtime.model.client import ModelClient, ModelRequest
from agentfleet_runtime.routing.streaming import delta_sink
from agentfleet_runtime.store.tasks import TaskStore, event

MAXLEN = 2000  # as the store's other event writers


class _CallStream:
    def __init__(self, streamer: AnswerStreamer, request: ModelRequest) -> None:
        self.s = streamer
        self.request = request
        self.pending: list[str] = []
        self.sent = False
        self.flushing: asyncio.Task[None] | None = None

    def __call__(self, text: str) -> None:
        self.pending.append(text)
        if self.flushing is None or self.flushing.done():
            delay = self.s.coalesce_s if self.sent else 0.0
            self.flushing = asyncio.ensure_future(self._flush_after(delay))

    async def _flush_after(self, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        await self.flush()

    async def flush(self) -> None:
        if not self.pending:
            return
        text, self.pending = "".join(self.pending), []
        self.sent = True
        await self.s.append(self.request.task_id, event("delta", step=self.request.step, text=text))

    async def close(self) -> None:
        if self.flushing is not None and not self.flushing.done():
            self.flushing.cancel()
            await asyncio.gather(self.flushing, return_exceptions=True)
        await self.flush()


class AnswerStreamer:
    def __init__(self, inner: ModelClient, store: TaskStore, coalesce_s: float = 0.05) -> None:
        self.inner = inner
        self.store = store
        self.coalesce_s = coalesce_s

    async def append(self, task_id: str, payload: bytes) -> None:
        await self.store.r.xadd(self.store.keys.events(task_id), {"e": payload}, maxlen=MAXLEN, approximate=True)

    async def complete(self, request: ModelRequest) -> ModelReply:
        if not request.task_id:
            return await self.inner.complete(request)
        stream = _CallStream(self, request)
        token = delta_sink.set(stream)
        try:
            return await self.inner.complete(request)
        finally:
            delta_sink.reset(token)
            await asyncio.shield(stream.close())

    async def close(self) -> None:
        await self.inner.close()

    def __getattr__(self, name: str) -> Any:  # start(), primary, ... of the wrapped client
        return getattr(self.inner, name)
