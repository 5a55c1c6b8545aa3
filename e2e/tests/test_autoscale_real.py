"""The autoscale bench's KEDA/HPA baseline against the real controllers: the comparison's mechanics.

e2e/bench/autoscale/real.py runs one burst three times on the control plane, each time with another
controller writing the ModelReplicaSet's count: agentfleet's autoscaler, KEDA with the real HPA
controller, and the bench's own re-implementation (KedaQueue) replayed through the scale
subresource. This test pins what makes the figures comparable, not the figures: each arm's count
was written by the controller it names, each one scaled up during the burst and back to one after,
and each arm ran the same load for the same time.
"""

from __future__ import annotations

import math

import pytest

from e2e.bench.autoscale.real import ARMS, REPLAY_MANAGER, Burst, compare, table
from e2e.harness import operator as fx
from e2e.harness.neighbours import install_thirdparty_crds, keda_bin_dir

crds, operator, gpu_pool = fx.crds, fx.operator, fx.gpu_pool

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


def test_keda_hpa_agentfleet_and_the_bench_replay_scale_one_burst(operator, gpu_pool, namespace, cluster) -> None:
    install_thirdparty_crds(cluster)
    gpu_pool.add("h100", count=2, gpus=8)
    # The tail ends once the count is back at 1: the mechanics, not the GPU-seconds, are under test.
    burst = Burst(clients=16, seconds=45, until_back=True)
    results = compare(cluster, namespace, gpu_pool.selector, burst, ARMS, repeats=1, keda_bin=keda_bin_dir())
    print("\n" + table(results))
    by = {r.arm: r for r in results}
    assert set(by) == set(ARMS)

    # Who wrote the count: the HPA controller and the replay through /scale, agentfleet in status.
    assert any(w.startswith("kube-controller-manager") for w in by["keda-hpa"].writers), by["keda-hpa"].writers
    assert REPLAY_MANAGER not in by["keda-hpa"].writers and "agentfleet-autoscaler" not in by["keda-hpa"].writers
    assert REPLAY_MANAGER in by["bench-keda"].writers and not any(
        w.startswith("kube-controller-manager") for w in by["bench-keda"].writers
    )
    assert "agentfleet-autoscaler" in by["agentfleet"].writers, by["agentfleet"].writers

    for r in results:
        # The same load for the same time, answered; sampled throughout.
        assert r.seconds == burst.seconds and r.errors == 0, r
        assert not r.starved, (
            f"{r.arm}: {r.requests} requests in {r.seconds:.0f} s: the harness did not get the CPU to measure"
        )
        # Sampled throughout (every 0.5 s; at least half of them), up to the count back at 1.
        watched = burst.seconds + (r.back_s if r.back_s is not None else burst.tail)
        assert len(r.timeline) >= 2 * watched * 0.5, f"{r.arm}: {len(r.timeline)} samples in {watched:.0f} s"
        assert all(n >= 1 for _, n, _ in r.timeline), f"{r.arm}: a sample failed to read the count"
        # Each controller saw the queue: up during the burst, a second replica serving, back to 1.
        assert r.decided_s is not None and r.decided_s < burst.seconds, f"{r.arm} never scaled up in the burst"
        assert r.serving_s is not None and r.peak > 1, r
        assert r.back_s is not None, f"{r.arm} not back at 1 replica within {burst.tail:.0f} s of the load stopping"
        # GPU-seconds lie between one replica's and the peak's over the horizon.
        horizon = r.timeline[-1][0] - r.timeline[0][0]
        assert 0 < r.gpu_seconds and math.isfinite(r.gpu_seconds) and r.gpu_seconds <= r.peak * 8 * horizon, r
