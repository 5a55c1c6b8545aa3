"""Shared-timer timeouts (timeouts.py): asyncio.timeout's behaviour, one loop timer for many."""

from __future__ import annotations

import asyncio

import pytest

from agentfleet_runtime.core import timeouts


def run(coro):
    return asyncio.run(coro)


def test_fires_never_early_and_at_most_a_granule_late():
    # How late the loop runs a due timer is the machine's (a loaded CI runner stalled 0.8 s); ours
    # is the time the one loop timer is armed for, so that is read off the loop, not a wall clock.
    async def body() -> None:
        loop = asyncio.get_running_loop()
        for delay in (0.02, 0.3, 1.5):
            start = loop.time()
            with pytest.raises(TimeoutError):
                with timeouts.timeout(delay) as scope:
                    armed = timeouts._last[1].timer.when()
                    await asyncio.sleep(10)
            took = loop.time() - start
            granule = 0.001 if delay < 1 else 0.01
            assert scope._when <= armed <= scope._when + granule, (delay, armed - scope._when)
            assert took >= delay, (delay, took)

    run(body())


def test_a_block_that_ends_in_time_is_never_cancelled_later():
    async def body() -> None:
        # A wide window: on a loaded machine a 1 ms sleep has taken over 50 ms (a unit-tier run beside
        # two model servers), and the block must end in time for the test to mean anything.
        with timeouts.timeout(0.5):
            await asyncio.sleep(0.001)
        # The bucket's time passes while the task sleeps: the timeout it left must not fire.
        await asyncio.sleep(0.7)
        assert asyncio.current_task().cancelling() == 0

    run(body())


def test_scopes_sharing_a_bucket_expire_only_while_inside():
    async def body() -> list[str]:
        loop = asyncio.get_running_loop()
        when = loop.time() + 0.05
        out: list[str] = []

        async def one(name: str, work: float) -> None:
            try:
                with timeouts.timeout_at(when):
                    await asyncio.sleep(work)
                out.append(f"{name} done")
            except TimeoutError:
                out.append(f"{name} timed out")

        await asyncio.gather(one("quick", 0.001), one("slow", 1.0), one("slow2", 1.0))
        return sorted(out)

    assert run(body()) == ["quick done", "slow timed out", "slow2 timed out"]


def test_nested_timeouts_each_raise_their_own():
    async def body() -> str:
        with timeouts.timeout(5):
            try:
                with timeouts.timeout(0.01):
                    await asyncio.sleep(1)
            except TimeoutError:
                pass
            await asyncio.sleep(0.001)  # the outer one still allows work
        try:
            with timeouts.timeout(0.01):
                with timeouts.timeout(5):
                    await asyncio.sleep(1)
        except TimeoutError:
            return "outer fired through the inner"
        return "no timeout"

    assert run(body()) == "outer fired through the inner"


def test_outside_cancellation_stays_a_cancellation():
    async def body() -> None:
        async def waits() -> None:
            with timeouts.timeout(5):
                await asyncio.sleep(1)

        t = asyncio.create_task(waits())
        await asyncio.sleep(0.01)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    run(body())


def test_expiry_and_cancellation_together_stay_a_cancellation():
    # As asyncio.timeout: when the task was also cancelled from outside, leaving the block must
    # not swallow that cancellation by turning it into TimeoutError.
    async def body() -> None:
        started = asyncio.Event()

        async def waits() -> None:
            with timeouts.timeout(0.02):
                started.set()
                try:
                    await asyncio.sleep(1)
                finally:
                    await asyncio.sleep(0.05)  # still inside while both cancellations land

        t = asyncio.create_task(waits())
        await started.wait()
        await asyncio.sleep(0.03)  # the timeout has fired (the task is in its finally)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t

    run(body())


def test_a_deadline_already_past_fires_at_once():
    async def body() -> None:
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):
            with timeouts.timeout_at(loop.time() - 1):
                await asyncio.sleep(1)

    run(body())


def test_outside_a_task_is_an_error():
    async def body() -> None:
        loop = asyncio.get_running_loop()
        errors: list[BaseException] = []

        def in_callback() -> None:
            try:
                with timeouts.timeout(1):
                    pass
            except RuntimeError as e:
                errors.append(e)

        loop.call_soon(in_callback)
        await asyncio.sleep(0.01)
        assert errors and "inside a task" in str(errors[0])

    run(body())


def test_each_event_loop_gets_its_own_timers():
    # Sequential loops (tests, asyncio.run twice): a wheel armed on a closed loop must not be used.
    for _ in range(3):
        with pytest.raises(TimeoutError):
            run(_sleep_under_timeout(0.01))


async def _sleep_under_timeout(delay: float) -> None:
    with timeouts.timeout(delay):
        await asyncio.sleep(1)
