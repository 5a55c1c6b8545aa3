"""Drives a pure Engine on the running asyncio loop's clock (real or virtual).

Take a step at ``loop.time()``, wait until the step's end, hand its tokens to the callers,
repeat; stop scheduling when idle so an idle replica costs nothing (important when a benchmark
simulates dozens of replicas for hours). Steps fuse the pure-decode iterations that follow
(engine.py): one timer per stretch of decode instead of one per token. A request submitted or
aborted meanwhile ends the stretch at the iteration in flight (the timer moves there), and
``sync`` commits the iterations started so far before anyone reads the engine's stats.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from .engine import Engine, SimRequest, StepResult, TokenEvent
from .kv_cache import HashedPrompt
from .tokenizer import output_text


class ReplicaStopped(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Completion:
    """A finished generation, with the timings a client would see."""

    request_id: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    finish_reason: str
    content_seed: int
    arrival: float
    first_token: float
    finished: float
    preemptions: int

    @property
    def text(self) -> str:
        return output_text(self.content_seed, 0, self.completion_tokens)

    @property
    def ttft(self) -> float:
        return self.first_token - self.arrival

    @property
    def latency(self) -> float:
        return self.finished - self.arrival


def completion_of(req: SimRequest) -> Completion:
    assert req.finish_reason is not None and req.first_token is not None and req.finished_at is not None
    return Completion(
        request_id=req.request_id,
        prompt_tokens=req.prompt_tokens,
        completion_tokens=req.num_output,
        cached_tokens=req.cached_tokens,
        finish_reason=req.finish_reason,
        content_seed=req.content_seed,
        arrival=req.arrival,
        first_token=req.first_token,
        finished=req.finished_at,
        preemptions=req.preemptions,
    )


class RequestHandle:
    """What a caller awaits: ``done`` resolves with the Completion; streaming callers also read
    ``tokens`` (one TokenEvent per generated token, the last one carrying finish_reason)."""

    def __init__(self, request: SimRequest, loop: asyncio.AbstractEventLoop) -> None:
        self.request = request
        self.done: asyncio.Future[Completion] = loop.create_future()
        # None in the queue means the replica stopped mid-stream.
        self.tokens: asyncio.Queue[TokenEvent | None] | None = asyncio.Queue() if request.stream else None


class EngineRunner:
    """Steps the engine from loop callbacks: ``step`` at the current loop time, a timer at the
    step's end that delivers its tokens and takes the next step. No task, no per-step future:
    a step costs one timer, which matters when a benchmark runs millions of them."""

    # Fused iterations per step at most (engine.step's max_iterations); bounds one run's plan.
    MAX_ITERATIONS = 4096

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._handles: dict[str, RequestHandle] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._pending: StepResult | None = None
        self._running = False
        self.last_step: StepResult | None = None
        self.paused_until = 0.0  # stall(): no step starts before this loop time

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._running = True
        self._kick()

    def sync(self) -> None:
        """Commit the engine's fused iterations started by now: call before reading its stats."""
        if self._loop is not None:
            self.engine.sync(self._loop.time())

    def _cut(self) -> None:
        """End the engine's fused run at the iteration in flight and move the step timer there
        (before the engine's state changes: a request arriving now joins the next iteration)."""
        if self._loop is None:
            return
        end = self.engine.cut(self._loop.time())
        if (
            end is not None
            and self._pending is not None
            and isinstance(self._timer, asyncio.TimerHandle)
            and self._timer.when() != end
        ):
            self._timer.cancel()
            self._timer = self._loop.call_at(end, self._end_of_step)

    async def stop(self) -> None:
        self._cut()
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._pending = None
        for handle in self._handles.values():
            if handle.tokens is not None:
                handle.tokens.put_nowait(None)  # wake streaming readers
            if not handle.done.done():
                handle.done.set_exception(ReplicaStopped("replica stopped"))
                handle.done.exception()  # mark retrieved: nobody may be awaiting it any more
        self._handles.clear()

    @property
    def inflight(self) -> int:
        return len(self._handles)

    def submit(
        self,
        request_id: str,
        prompt: list[int] | HashedPrompt,
        *,
        max_tokens: int | None,
        stream: bool = False,
        ignore_eos: bool = False,
    ) -> RequestHandle:
        loop = asyncio.get_running_loop()
        self._cut()
        req = self.engine.add_request(
            request_id, prompt, now=loop.time(), max_tokens=max_tokens, stream=stream, ignore_eos=ignore_eos
        )
        handle = RequestHandle(req, loop)
        self._handles[request_id] = handle
        if self._timer is None and self._running:
            # Start a step on the next loop pass, so requests submitted together share it.
            self._timer = loop.call_soon(self._kick)
        return handle

    def stall(self, seconds: float) -> None:
        """No step starts for ``seconds`` (the one running finishes); requests queue meanwhile."""
        assert self._loop is not None
        self._cut()  # the iteration in flight finishes, no later one starts
        self.paused_until = max(self.paused_until, self._loop.time() + seconds)

    def abort(self, request_id: str) -> None:
        self._cut()
        handle = self._handles.pop(request_id, None)
        self.engine.abort(request_id, asyncio.get_running_loop().time())
        if handle is not None and not handle.done.done():
            handle.done.cancel()

    def _kick(self) -> None:
        """Take a step now, or go idle; called when idle work arrives and at each step's end."""
        self._timer = None
        if not self._running or self._loop is None:
            return
        if self._loop.time() < self.paused_until:
            self._timer = self._loop.call_at(self.paused_until, self._kick)
            return
        result = self.engine.step(self._loop.time(), self.MAX_ITERATIONS)
        if result is None:
            return
        self._pending = result
        self.last_step = result
        self._timer = self._loop.call_at(result.end, self._end_of_step)

    def _end_of_step(self) -> None:
        result, self._pending = self._pending, None
        if result is not None:
            if result.iterations > 1 and self._loop is not None:
                self.engine.sync(self._loop.time())  # a fused run's last iteration may finish requests
            self._deliver(result)
        self._kick()

    def _deliver(self, result: StepResult) -> None:
        for event in result.events:
            rid = event.request.request_id
            handle = self._handles.get(rid)
            if handle is None:
                continue  # aborted meanwhile
            if handle.tokens is not None:
                handle.tokens.put_nowait(event)
            if event.finish_reason is not None:
                del self._handles[rid]
                if not handle.done.done():
                    handle.done.set_result(completion_of(event.request))
