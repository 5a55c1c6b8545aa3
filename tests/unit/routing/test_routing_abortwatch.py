"""The abort watch (abortwatch.AbortWatch) against a scripted /metrics reader on virtual time:
when it reads, which cancels it judges, and the verdict each rise gives. Figures worked by hand
from the script: the baseline read at the first cancel, the next ``settle_s`` later, then one
every ``every_s`` while cancels are left to judge."""

from __future__ import annotations

import asyncio

from agentfleet_runtime.routing.abortwatch import AbortWatch
from agentfleet_sim import run_virtual


def watch_run(cancels: list[float], counts: list[float | None | Exception], *, until: float = 60.0, **kw: float) -> tuple[AbortWatch, list[tuple[str, float]]]:
    """Cancels on replica "r" at the given times; the reader answers ``counts`` in turn (the last
    one from then on; an exception is raised). Returns the watch and its reads (key, time)."""
    reads: list[tuple[str, float]] = []

    async def main() -> AbortWatch:
        loop = asyncio.get_running_loop()

        async def read(key: str) -> float | None:
            reads.append((key, round(loop.time(), 6)))
            c = counts[min(len(reads), len(counts)) - 1]
            if isinstance(c, Exception):
                raise c
            return c

        w = AbortWatch(read, **kw)  # type: ignore[arg-type]
        for t in cancels:
            await asyncio.sleep(t - loop.time())
            w.cancelled("r", loop.time())
        await asyncio.sleep(until - loop.time())
        await w.close()
        return w

    return run_virtual(main()), reads


def test_a_cancel_made_in_the_settle_time_before_a_read_is_judged_at_the_next_one() -> None:
    # Pins the judged cancels: the one at 1 s is not settled at the 2 s read, kept, and judged at 12 s (it was dropped before the fix).
    w, reads = watch_run([0.0, 1.0], [5.0], min_cancels=2)
    assert reads == [("r", 0.0), ("r", 2.0), ("r", 12.0)]
    assert w.known("r") is False and w.aborts("r") is False
