"""The runtime's event loop (eventloop.py): uvloop when installed, asyncio's when forced or absent,
and the runtime's own loop-level pieces (shared-timer timeouts) working on both."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from agentfleet_runtime.core import eventloop, timeouts


async def _loop_type_and_timeout() -> tuple[type, bool]:
    timed_out = False
    try:
        with timeouts.timeout(0.02):
            await asyncio.sleep(5)
    except TimeoutError:
        timed_out = True
    # A block left in time stays uncancelled when its bucket's time passes.
    with timeouts.timeout(0.03):
        await asyncio.sleep(0.001)
    await asyncio.sleep(0.05)
    assert asyncio.current_task().cancelling() == 0
    return type(asyncio.get_running_loop()), timed_out


def test_runs_on_uvloop_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eventloop, "_FORCED", "")
    loop_type, timed_out = eventloop.run(_loop_type_and_timeout())
    assert issubclass(loop_type, uvloop.Loop) and timed_out
    assert eventloop.name().startswith("uvloop ")


def test_asyncio_loop_when_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eventloop, "_FORCED", "asyncio")
    loop_type, timed_out = eventloop.run(_loop_type_and_timeout())
    assert not issubclass(loop_type, uvloop.Loop) and issubclass(loop_type, asyncio.BaseEventLoop) and timed_out
    assert eventloop.name() == "asyncio"


def test_asyncio_loop_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(eventloop, "_uvloop", None)
    monkeypatch.setattr(eventloop, "_FORCED", "")
    assert eventloop.loop_factory() is None and eventloop.name() == "asyncio"
    assert eventloop.run(asyncio.sleep(0, result=7)) == 7
