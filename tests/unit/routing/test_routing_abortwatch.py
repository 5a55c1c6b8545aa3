"""The abort watch (abortwatch.AbortWatch) against a scripted /metrics reader on virtual time:
when it reads, which cancels it judges, and the verdict each rise gives. Figures worked by hand
from the script: the baseline read at the first cancel, the next ``settle_s`` later, then one
every ``every_s`` while cancels are left to judge."""

from __future__ import annotations

import asyncio

from agentfleet_runtime.routing.abortwatch import AbortWatch
from agentfleet_sim import run_virtual


def watch_run(
    cancels: list[float], counts: list[float | None | Exception], *, until: float = 60.0, **kw: float
) -> tuple[AbortWatch, list[tuple[str, float]]]:
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
    # Pins the judged cancels: the one at 1 s is not settled at the 2 s read, kept, and judged at 12 s (it was dropped
    # before the fix).
    w, reads = watch_run([0.0, 1.0], [5.0], min_cancels=2)
    assert reads == [("r", 0.0), ("r", 2.0), ("r", 12.0)]
    assert w.known("r") is False and w.aborts("r") is False


def test_an_unknown_replica_is_assumed_to_abort_and_has_no_verdict() -> None:
    # Pins aborts() and known() for a replica never cancelled on.
    w = AbortWatch(lambda key: None)  # type: ignore[arg-type,return-value]
    assert w.aborts("nobody") is True and w.known("nobody") is None


def test_one_settled_cancel_and_a_rise_of_one_mean_the_engine_aborts() -> None:
    # Pins the defaults' first check (baseline at the cancel, the next read settle_s = 2 s later, of the same key) and
    # the rise >= max(1, half the judged) verdict.
    w, reads = watch_run([0.0], [5.0, 6.0])
    assert reads == [("r", 0.0), ("r", 2.0)]
    assert w.known("r") is True and w.aborts("r") is True


def test_no_abort_series_at_the_baseline_counts_as_zero() -> None:
    # Pins the missing baseline read as 0: a counter that appears at 1 is a rise of 1.
    w, _ = watch_run([0.0], [None, 1.0])
    assert w.known("r") is True


def test_three_cancels_without_a_rise_mean_the_engine_runs_losers_on() -> None:
    # Pins min_cancels' default of 3 and rose <= 0: three cancels at once (one check, not three), the count flat at 5.
    w, reads = watch_run([0.0, 0.0, 0.0], [5.0])
    assert reads == [("r", 0.0), ("r", 2.0)]
    assert w.known("r") is False and w.aborts("r") is False


def test_a_rise_under_half_the_judged_cancels_decides_nothing_and_stops_the_checks() -> None:
    # Pins the middle ground: 4 judged and a rise of 1 (< max(1, 2), > 0) is no verdict, and with no cancel left no
    # check is scheduled.
    w, reads = watch_run([0.0, 0.0, 0.0, 0.0], [5.0, 6.0])
    assert reads == [("r", 0.0), ("r", 2.0)]
    assert w.known("r") is None and w.aborts("r") is True


def test_a_cancel_left_to_judge_is_read_again_every_s_after_the_last_read() -> None:
    # Pins the second check's time (the last read + every_s = 10 s) and the cancels kept: the one at 1 s only, judged at
    # 12 s (2 of 3: no verdict yet).
    w, reads = watch_run([0.0, 1.0], [5.0])
    assert reads == [("r", 0.0), ("r", 2.0), ("r", 12.0)]
    assert w.known("r") is None


def test_a_failed_read_is_retried_settle_s_later_without_waiting_for_a_cancel() -> None:
    # Pins the retry on the watch's own schedule: the read at 2 s fails, the next comes settle_s
    # later (4 s), judged against the first baseline.
    w, reads = watch_run([0.0], [5.0, OSError("500"), 6.0])
    assert reads == [("r", 0.0), ("r", 2.0), ("r", 4.0)]
    assert w.known("r") is True


def test_a_failed_baseline_is_read_again_and_a_rise_counts_from_it_alone() -> None:
    # Pins the baseline retry: the baseline fails at 0 s and is read at 2 s (5); the cancel at 0 s
    # precedes it and is not judged; the one at 3 s is, at 14 s, flat: the engine runs losers on (a
    # missing baseline read as 0 made 5 a rise).
    w, reads = watch_run([0.0, 3.0], [OSError("500"), 5.0], min_cancels=1)
    assert reads == [("r", 0.0), ("r", 2.0), ("r", 4.0), ("r", 14.0)]
    assert w.known("r") is False


def test_reads_that_keep_failing_back_off_to_every_s_and_stop_after_max_failures() -> None:
    # Pins the back-off (settle_s doubling up to every_s: 2, 4, 8, 10 s) and the stop after
    # max_failures (5) failed reads in a row.
    w, reads = watch_run([0.0], [OSError("down")])
    assert reads == [("r", 0.0), ("r", 2.0), ("r", 6.0), ("r", 14.0), ("r", 24.0)]
    assert w.known("r") is None and w.aborts("r") is True


def test_an_engine_that_fails_the_first_read_after_each_disconnect_is_still_judged() -> None:
    # Issue 46: llm-d's simulator answers the first /metrics read after a client disconnect with
    # HTTP 500, and runs cancelled requests on. Reading again only at the next cancel always read
    # right after a disconnect: 8 cancels in 30 s, never judged. Cancels every 3.7 s from 0.5 s.
    reads: list[float] = []

    async def main() -> AbortWatch:
        loop = asyncio.get_running_loop()
        failing = False

        async def read(key: str) -> float | None:
            nonlocal failing
            reads.append(round(loop.time(), 6))
            if failing:
                failing = False
                raise OSError("500 Internal Server Error")
            return 5.0  # the abort counter never rises

        w = AbortWatch(read)
        for i in range(8):
            await asyncio.sleep(0.5 + 3.7 * i - loop.time())
            failing = True  # the disconnect
            w.cancelled("r", loop.time())
        await asyncio.sleep(40.0 - loop.time())
        await w.close()
        return w

    w = run_virtual(main())
    assert w.known("r") is False, reads
    assert reads == [0.5, 2.5, 4.5, 6.5, 16.5, 18.5], reads


def test_close_waits_for_a_check_it_cancels() -> None:
    # Pins close(): a check asleep at close is cancelled and awaited (it has left the task table when close returns)
    # without raising.
    async def main() -> tuple[int, int]:
        async def read(key: str) -> float | None:
            return 5.0

        w = AbortWatch(read)
        w.cancelled("r", 0.0)
        await asyncio.sleep(1.0)
        before = len(w._tasks)
        await w.close()
        return before, len(w._tasks)

    assert run_virtual(main()) == (1, 0)
