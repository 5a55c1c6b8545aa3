"""The bench's KEDA baseline as the real-controller comparison drives it (e2e/bench/autoscale/real.py):
KedaQueue.desired on a waiting count, with HPA's default behaviour around it."""

from __future__ import annotations

from e2e.bench.autoscale.policies import KedaQueue


def test_scale_up_is_capped_at_max_4_pods_or_100_percent_a_period() -> None:
    q = KedaQueue(threshold=2, min_replicas=1)
    assert q.desired(waiting=14, current=1, now=0.0, max_replicas=6) == 5  # ceil(14 / 2) = 7, 1 + 4 at most
    assert q.desired(waiting=40, current=5, now=15.0, max_replicas=16) == 10  # 100 % of 5 beats 4 pods
    assert q.desired(waiting=40, current=5, now=30.0, max_replicas=6) == 6  # the cap


def test_scale_down_waits_for_the_window_it_is_given() -> None:
    q = KedaQueue(threshold=2, min_replicas=1)
    assert q.desired(waiting=10, current=5, now=0.0, down_window=30.0) == 5
    # The queue empties: the highest recommendation inside the window holds the count.
    assert q.desired(waiting=0, current=5, now=15.0, down_window=30.0) == 5
    assert q.desired(waiting=0, current=5, now=29.0, down_window=30.0) == 5
    assert q.desired(waiting=0, current=5, now=31.0, down_window=30.0) == 1  # the 5 left the window
    # The bench's default: HPA's 300 s.
    d = KedaQueue(threshold=2, min_replicas=1)
    d.desired(waiting=10, current=5, now=0.0)
    assert d.desired(waiting=0, current=5, now=31.0) == 5 and d.desired(waiting=0, current=5, now=301.0) == 1
