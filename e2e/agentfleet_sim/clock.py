"""Clocks: the real event-loop clock, and a virtual one for fast offline simulation.

The engine never reads a clock; its drivers do, through ``loop.time()``. To run hours of
simulated time in minutes, ``VirtualTimeLoop`` is an ordinary asyncio selector loop whose
``time()`` is virtual and whose selector, when nothing is ready, jumps the clock straight to the
next timer instead of sleeping. Everything written with ``asyncio.sleep``/``wait_for``/``call_at``
(the engine runner, fault delays, a benchmark's agents and tool waits) then runs unchanged on
simulated time. Real sockets still work, but their timing is meaningless there: use the
in-process replica API, not HTTP, in virtual time.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> float: ...


class ManualClock:
    """A clock a test moves by hand."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time cannot go back")
        self._now += seconds

    def set(self, t: float) -> None:
        if t < self._now:
            raise ValueError("time cannot go back")
        self._now = t


class LoopClock:
    """The running event loop's clock (real or virtual)."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop

    def now(self) -> float:
        return (self._loop or asyncio.get_running_loop()).time()


class _VirtualSelector(selectors.BaseSelector):
    """Delegates registrations to a real selector; when no I/O is ready, advances the virtual
    clock by the loop's timeout (the delay to its next timer) instead of waiting."""

    def __init__(self, clock: ManualClock) -> None:
        self._real = selectors.DefaultSelector()
        self._clock = clock

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        # A pure simulation registers only the loop's own wake-up pipe: polling it on every pass
        # (a syscall per simulated event) is skipped then. Callbacks from other threads still
        # run, as the loop checks its ready queue on every pass.
        if len(self._real.get_map()) > 1:
            ready = self._real.select(0)
            if ready:
                return ready
        if timeout is None:
            # Nothing scheduled at all: only another thread (call_soon_threadsafe) can wake us.
            return self._real.select(None)
        if timeout > 0:
            self._clock.advance(timeout)
        return []

    def get_map(self) -> Any:
        return self._real.get_map()

    def close(self) -> None:
        self._real.close()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, start: float = 0.0) -> None:
        self.virtual_clock = ManualClock(start)
        super().__init__(selector=_VirtualSelector(self.virtual_clock))

    def time(self) -> float:
        return self.virtual_clock._now  # read on every callback: no method call


def run_virtual(main: Coroutine[Any, Any, T], start: float = 0.0) -> T:
    """``asyncio.run`` on simulated time: returns main's result, however long it 'waits'."""
    loop = VirtualTimeLoop(start)
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_all(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_all(loop: asyncio.AbstractEventLoop) -> None:
    pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
