"""Timeouts that share timers: ``asyncio.timeout`` semantics at a fraction of its cost per call.

Every model call and tool call of every task runs under a timeout, and almost none of them ever
fires (a task's budget is minutes, a call takes a fraction of a second). ``asyncio.timeout`` arms
and cancels one event-loop timer per use: a ``TimerHandle`` (with a copy of the context), a push
onto the loop's heap, whose order is a Python-level ``__lt__``, and a cancelled entry left in the
heap. With a thousand tasks in a worker that was a tenth of a step's CPU.

Here a timeout joins a bucket: its deadline rounded *up* to a granularity of about 1 % of the time
left (1 ms under a second, 10 ms under ten, 100 ms under a hundred, 1 s beyond), so a timeout
fires at most that late and never early. Buckets live in a heap of plain floats, and one loop
timer is armed for the earliest; entering and leaving a timeout is a set insert and a set
removal. A bucket stays until its time even once empty, so a task that re-enters the same
deadline every step (its budget) costs no new bucket.

The context manager (a plain ``with``, used inside a task) behaves as ``asyncio.timeout_at``: on
expiry it cancels the task and turns the resulting ``CancelledError`` into ``TimeoutError`` when
leaving the block, unless the task was also cancelled for another reason (``Task.uncancel``
bookkeeping, as asyncio does), so nested timeouts and outside cancellation compose the same way.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import sys
from types import TracebackType
from typing import Any

_ceil = math.ceil
_running_loop = asyncio.get_running_loop

if sys.version_info < (3, 12):
    # Python 3.11's asyncio.current_task is Python code that looks the loop up again and reads
    # this dict (kept by the C task implementation); 3.12 made current_task itself C.
    from asyncio.tasks import _current_tasks

    def _task_of(loop: asyncio.AbstractEventLoop) -> asyncio.Task[Any] | None:
        return _current_tasks.get(loop)

else:  # pragma: no cover - exercised on 3.12+

    def _task_of(loop: asyncio.AbstractEventLoop) -> asyncio.Task[Any] | None:
        return asyncio.current_task(loop)


# The wheel of the loop that used one last: a worker has one loop, so this is a hit but for the
# first use. Another loop (a test's next asyncio.run, a loop in another thread) gets a new wheel;
# a replaced wheel still fires what it holds, through its armed timer on its own loop.
_last: tuple[asyncio.AbstractEventLoop | None, _Wheel | None] = (None, None)


class _Wheel:
    """The buckets of one event loop."""

    __slots__ = ("loop", "buckets", "heap", "timer", "timer_at")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.buckets: dict[float, set[Timeout]] = {}
        self.heap: list[float] = []  # bucket times, each once (a bucket is dropped only when due)
        self.timer: asyncio.TimerHandle | None = None
        self.timer_at = math.inf

    def add(self, scope: Timeout, when: float) -> set[Timeout]:
        left = when - self.loop.time()
        # About 1 % of the time left: how late a timeout may fire, and how many buckets can exist.
        g = 0.001 if left < 1.0 else 0.01 if left < 10.0 else 0.1 if left < 100.0 else 1.0
        at = _ceil(when / g) * g
        if at < when:  # float rounding: never fire early
            at += g
        bucket = self.buckets.get(at)
        if bucket is None:
            bucket = self.buckets[at] = set()
            heapq.heappush(self.heap, at)
            if at < self.timer_at:
                self._arm(at)
        bucket.add(scope)
        return bucket

    def _arm(self, at: float) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer_at = at
        self.timer = self.loop.call_at(at, self._fire)

    def _fire(self) -> None:
        self.timer, self.timer_at = None, math.inf
        now = self.loop.time()
        heap, buckets = self.heap, self.buckets
        while heap and heap[0] <= now:
            bucket = buckets.pop(heapq.heappop(heap), None)
            if bucket:
                for scope in list(bucket):
                    scope._expire()
        if heap:
            self._arm(heap[0])


class Timeout:
    """``with timeout_at(when)``: ``when`` on the loop's clock (``loop.time()``)."""

    __slots__ = ("_when", "_loop", "_task", "_cancelling", "_bucket", "_expired")

    def __init__(self, when: float, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._when = when
        self._loop = loop
        self._task: asyncio.Task[Any] | None = None
        self._cancelling = 0
        self._bucket: set[Timeout] | None = None
        self._expired = False

    def expired(self) -> bool:
        return self._expired

    # A plain (not async) context manager: entering and leaving await nothing, and two coroutine
    # objects per use were a visible part of the cost. ``with timeout_at(...):`` inside a task.
    def __enter__(self) -> Timeout:
        loop = self._loop or _running_loop()
        task = _task_of(loop)
        if task is None:
            raise RuntimeError("Timeout should be used inside a task")
        self._task = task
        self._cancelling = task.cancelling()
        last = _last  # one read: another thread may replace it
        wheel = last[1] if last[0] is loop else _wheel(loop)
        self._bucket = wheel.add(self, self._when)  # type: ignore[union-attr]
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        bucket = self._bucket
        if bucket is not None:
            bucket.discard(self)
            self._bucket = None
        if self._expired:
            assert self._task is not None
            # As asyncio.Timeout: only a cancellation this timeout caused becomes TimeoutError.
            if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
                raise TimeoutError from exc
        return None

    def _expire(self) -> None:
        if self._bucket is None or self._task is None:  # already left the block
            return
        self._bucket = None
        self._expired = True
        self._task.cancel()


def _wheel(loop: asyncio.AbstractEventLoop) -> _Wheel:
    global _last
    wheel = _Wheel(loop)
    _last = (loop, wheel)
    return wheel


def timeout_at(when: float) -> Timeout:
    """A timeout at ``when`` on the running loop's clock."""
    return Timeout(when)


def timeout(delay: float) -> Timeout:
    """A timeout ``delay`` seconds from now (``asyncio.timeout`` without a None delay)."""
    loop = _running_loop()
    return Timeout(loop.time() + delay, loop)
