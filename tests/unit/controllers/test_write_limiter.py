"""The process-wide write limiter: a token bucket with client-go's QPS/burst meaning."""

from __future__ import annotations

import pytest

from agentfleet.kube import WriteLimiter


def test_burst_passes_at_once_then_writes_are_paced_at_qps() -> None:
    w = WriteLimiter(qps=10, burst=3)
    assert [w.wait_time() for _ in range(3)] == [0.0, 0.0, 0.0]
    # The bucket is empty: each further write owes 1/qps more than the one before it.
    waits = [w.wait_time() for _ in range(3)]
    assert waits[0] == pytest.approx(0.1, abs=0.01)
    assert waits[1] == pytest.approx(0.2, abs=0.01)
    assert waits[2] == pytest.approx(0.3, abs=0.01)


def test_zero_qps_means_no_limit() -> None:
    w = WriteLimiter(qps=0, burst=1)
    assert all(w.wait_time() == 0.0 for _ in range(1000))


def test_reconfigure_refills_the_bucket() -> None:
    w = WriteLimiter(qps=1, burst=1)
    w.wait_time()
    assert w.wait_time() > 0.5
    w.configure(qps=1, burst=2)
    assert w.wait_time() == 0.0
