"""Automatic pipelining of Lua script calls: many tasks' checkpoints share one round trip.

With hundreds of tasks in one worker, sending each checkpoint on its own costs a pool checkout,
a write syscall and a read per call. The batcher queues calls made during one event-loop turn and
sends them as one pipeline (no MULTI: the scripts are atomic one by one, and the batch need not
be). One task alone sees the same latency as a direct call; many tasks share the syscalls.

Order is kept: calls are sent in the order they were made. A NOSCRIPT reply (Redis restarted
and lost its script cache) reloads the script and re-sends just that call.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from redis.asyncio.client import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

MAX_BATCH = 256


class ScriptBatcher:
    def __init__(self, r: Redis, max_batch: int = MAX_BATCH) -> None:
        self.r = r
        self.max_batch = max_batch
        self._queue: list[tuple[AsyncScript, list[str], list[Any], asyncio.Future[Any]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def call(self, script: AsyncScript, keys: list[str], args: list[Any]) -> Any:
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append((script, keys, args, fut))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="script-batcher")
        self._wake.set()
        return await fut

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(0)  # let the other tasks ready in this turn queue their calls
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                await self._send(batch)

    async def _send(self, batch: list[tuple[AsyncScript, list[str], list[Any], asyncio.Future[Any]]]) -> None:
        pipe = self.r.pipeline(transaction=False)
        for script, keys, args, _ in batch:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        try:
            results = await pipe.execute(raise_on_error=False)
        except Exception as e:  # the whole round trip failed (after the client's retries)
            for *_, fut in batch:
                if not fut.done():
                    fut.set_exception(e)
            return
        again = []
        for item, res in zip(batch, results, strict=True):
            fut = item[3]
            if fut.done():  # the caller was cancelled; the script ran (or not) all the same
                continue
            if isinstance(res, NoScriptError):
                again.append(item)
            elif isinstance(res, Exception):
                fut.set_exception(res)
            else:
                fut.set_result(res)
        if again:
            for script in {id(i[0]): i[0] for i in again}.values():
                await self.r.script_load(script.script)
            self._queue[:0] = again
            self._wake.set()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
