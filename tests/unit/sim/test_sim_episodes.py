"""Slow episodes: the schedule's long-run share of time, its independence from traffic, and the
replica making calls slow exactly inside an episode."""

from __future__ import annotations

import asyncio

import pytest

from agentfleet_sim import EngineConfig, FaultConfig, Replica, ReplicaConfig, run_virtual
from agentfleet_sim.episodes import SlowEpisodes

FAST = EngineConfig(served_name="m", max_model_len=8192, kv_cache_tokens=65536, output_tokens_median=50)


def test_episodes_take_their_share_of_time_with_the_mean_length() -> None:
    horizon = 2_000_000.0
    eps = SlowEpisodes(0.01, 20.0, seed=5).episodes(horizon)
    slow = sum(min(e, horizon) - s for s, e in eps)
    assert slow / horizon == pytest.approx(0.01, rel=0.15)
    assert sum(e - s for s, e in eps) / len(eps) == pytest.approx(20.0, rel=0.15)
    assert all(a_end < b_start for (_, a_end), (b_start, _) in zip(eps, eps[1:], strict=False))


def test_active_matches_the_schedule_and_does_not_depend_on_the_queries() -> None:
    a, b = SlowEpisodes(0.05, 10.0, seed=1), SlowEpisodes(0.05, 10.0, seed=1)
    for t in range(0, 20_000, 7):  # a queried often, b only at the end
        a.active(float(t))
    schedule = b.episodes(20_000.0)
    assert a.episodes(20_000.0) == schedule
    s, e = schedule[0]
    assert a.active(s) and a.active((s + e) / 2) and not a.active(e) and not a.active(s - 1e-6)
    assert SlowEpisodes(0.05, 10.0, seed=2).episodes(20_000.0) != schedule


def test_edge_fractions_and_validation() -> None:
    assert not SlowEpisodes(0.0, 10.0, seed=0).active(1e9)
    assert SlowEpisodes(1.0, 10.0, seed=0).active(0.0)
    with pytest.raises(ValueError):
        SlowEpisodes(1.5, 10.0, seed=0)
    with pytest.raises(ValueError):
        SlowEpisodes(0.1, 0.0, seed=0)
    with pytest.raises(ValueError):
        FaultConfig().update({"slow_episode_fraction": -0.1})
    with pytest.raises(ValueError):
        FaultConfig().update({"slow_episode_seconds": 0})


def test_calls_started_inside_an_episode_are_slow_and_only_those() -> None:
    async def main() -> tuple[int, int, int]:
        faults = FaultConfig(slow_episode_fraction=0.2, slow_episode_seconds=30.0, slow_factor=10.0, seed=4)
        assert FaultConfig(seed=4).slow_episode_fraction == 0.0  # off unless asked for
        replica = Replica(ReplicaConfig(engine=FAST, faults=faults))
        await replica.start()
        loop = asyncio.get_running_loop()
        agree = slow = calls = 0
        while loop.time() < 3000:
            inside = replica.in_slow_episode()
            t0 = loop.time()
            await replica.generate([5, 6, 7, calls], max_tokens=4, ignore_eos=True)
            was_slow = loop.time() - t0 > 0.5  # 4 tokens take ~0.1 s, ~1 s when 10x slow
            agree += was_slow == inside
            slow += was_slow
            calls += 1
            await asyncio.sleep(1.0)
        assert replica.slow_calls == slow
        episodes = replica.slow_episodes()
        assert len(episodes) >= 5 and all(s < loop.time() for s, _ in episodes)
        await replica.stop()
        return agree, slow, calls

    agree, slow, calls = run_virtual(main())
    assert agree == calls
    assert 0.08 * calls < slow < 0.35 * calls  # ~20 % of the time; calls are near-uniform in time


def test_reconfiguring_episodes_takes_effect() -> None:
    async def main() -> None:
        replica = Replica(ReplicaConfig(engine=FAST))
        await replica.start()
        assert not replica.in_slow_episode()
        replica.configure(slow_episode_fraction=1.0)
        assert replica.in_slow_episode()
        replica.configure(slow_episode_fraction=0.0)
        assert not replica.in_slow_episode()
        await replica.stop()

    run_virtual(main())
