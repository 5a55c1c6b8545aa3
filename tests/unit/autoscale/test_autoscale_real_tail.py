"""The autoscale bench's tail watch (e2e/bench/autoscale/real.py): the e2e test stops watching once
the count is back at 1 after the load stopped; the bench watches the whole tail."""

from __future__ import annotations

import time

from e2e.bench.autoscale.real import Sampler


def sampler(samples: list[tuple[float, int, int, int]]) -> Sampler:
    s = Sampler(api=None, sim=None, ns="ns", name="m", from_status=False)  # type: ignore[arg-type]
    s.samples = samples
    return s


def test_the_watch_ends_at_the_first_sample_back_at_one_after_the_load_stopped() -> None:
    stopped = time.monotonic()
    back = sampler([(stopped - 1, 1, 1, 1), (stopped + 0.5, 3, 3, 3), (stopped + 1, 1, 1, 1)])
    t0 = time.monotonic()
    back.watch_tail(stopped, 5.0, until_back=True)
    assert time.monotonic() - t0 < 1.0


def test_the_watch_waits_the_tail_out_when_not_asked_to_stop_or_not_back() -> None:
    stopped = time.monotonic()
    # At 1 only before the load stopped, or not asked to stop early: the whole tail.
    for s, until_back in (
        (sampler([(stopped - 1, 1, 1, 1), (stopped + 0.5, 3, 3, 3)]), True),
        (sampler([(stopped + 1, 1, 1, 1)]), False),
    ):
        t0 = time.monotonic()
        s.watch_tail(stopped, 1.2, until_back=until_back)
        assert time.monotonic() - t0 >= 1.2
