"""The event loop a runtime process runs on: uvloop when it is installed, asyncio's otherwise.

A worker with a thousand tasks wakes a task, arms a timer or completes a future several times per
step; asyncio's pure-Python loop (its ``Handle`` objects, its timer heap ordered by a Python
``__lt__``, its selector wrapper) was about a tenth of a step's CPU. uvloop does the same in C on
libuv, with the same semantics for everything the runtime uses (tasks, futures, timers, streams,
protocols, signal handlers). It is a dependency; the fallback keeps the runtime correct where it
cannot be installed (e.g. an interpreter it has no wheel for).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

try:
    import uvloop as _uvloop
except ImportError:  # pragma: no cover - exercised only where uvloop is missing
    _uvloop = None

# AGENTFLEET_EVENT_LOOP=asyncio forces asyncio's loop (to compare, or to rule uvloop out).
_FORCED = os.environ.get("AGENTFLEET_EVENT_LOOP", "").strip().lower()


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What ``asyncio.Runner`` should build loops with; None: the event loop policy's."""
    if _FORCED == "asyncio":
        return asyncio.SelectorEventLoop  # even where a uvloop policy is installed
    if _uvloop is None:
        return None
    return _uvloop.new_event_loop


def name() -> str:
    """Which loop ``run`` uses, for logs and benchmark reports."""
    return f"uvloop {_uvloop.__version__}" if _uvloop is not None and _FORCED != "asyncio" else "asyncio"


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the runtime's loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(main)
