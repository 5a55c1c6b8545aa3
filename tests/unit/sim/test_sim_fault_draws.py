"""Fault draws keyed by the call (``FaultConfig.draws = "call"``, faultdraws.py): a call's first
attempt is slow or not whichever replica it reaches, in whatever order, under whatever routing
policy; a hedge's duplicate draws afresh; the oracle's peek agrees with the draw. The pairing test
runs the real routing client twice on one seed, without and with hedging, and compares the slow
logical calls each run met: the same with keyed draws, not with the default per-replica draws
(which is why the hedging bench's share of the oracle's gain was noisy)."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agentfleet_runtime.model.client import ModelRequest
from agentfleet_runtime.routing.client import RoutingModelClient
from agentfleet_runtime.routing.metrics import RoutingMetrics
from agentfleet_runtime.routing.settings import Endpoint, RoutingSettings, Tier
from agentfleet_runtime.routing.sources import StaticSource
from agentfleet_sim import EngineConfig, FaultConfig, Replica, ReplicaConfig, fleet_config, run_virtual, start_replicas
from agentfleet_sim.faultdraws import CallDraws, prompt_key
from agentfleet_sim.kv_cache import HashedPrompt
from agentfleet_sim.transport import SimTransport

FAST = EngineConfig(served_name="m", max_model_len=8192, kv_cache_tokens=65536, output_tokens_median=50)
ENGINE = {"max_model_len": 8192, "kv_cache_tokens": 262_144, "output_tokens_median": 40}


def chat(content: str) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": content}], "max_tokens": 4}


def record_draws(replica: Replica, log: list[tuple[int, bool]]) -> None:
    """Log (prompt key, slow?) of every call the replica admits, in the order it admits them."""
    draw = replica._faults_before_call

    async def logged(prompt: Any) -> float:
        factor = await draw(prompt)
        log.append((prompt_key(prompt), factor > 1.0))
        return factor

    replica._faults_before_call = logged  # type: ignore[method-assign]


def first_attempts(log: list[tuple[int, bool]]) -> dict[int, bool]:
    out: dict[int, bool] = {}
    for key, slow in log:
        out.setdefault(key, slow)
    return out


def test_the_option_is_off_by_default_and_checked() -> None:
    assert FaultConfig().draws == "replica"
    assert FaultConfig().update({"draws": "call"}).draws == "call"
    with pytest.raises(ValueError):
        FaultConfig().update({"draws": "task"})


def test_prompt_keys_name_the_tokens_and_books_count_attempts() -> None:
    assert prompt_key([1, 2, 3]) == prompt_key((1, 2, 3)) != prompt_key([1, 2, 4])
    tokens = list(range(100))
    assert prompt_key(HashedPrompt(tokens, 16)) == prompt_key(HashedPrompt(tokens[:40], 16).extend(tokens[40:]))
    book = CallDraws(7)
    peeked = book.peek(5).random()
    assert book.attempts(5) == 0 and book.take(5).random() == peeked  # a peek uses nothing up
    assert book.take(5).random() != peeked and book.attempts(5) == 2  # the next attempt draws afresh
    assert CallDraws(7).take(5).random() == peeked != CallDraws(8).take(5).random()


def test_a_calls_first_attempt_draws_the_same_on_any_replica_in_any_order() -> None:
    async def run(order: list[int], reverse: bool) -> dict[int, bool]:
        log: list[tuple[int, bool]] = []
        sims = await start_replicas(
            3, fleet_config(3, engine=FAST, faults={"slow_fraction": 0.3, "seed": 11, "draws": "call"})
        )
        for r in sims:
            record_draws(r, log)
        for n, i in enumerate(order):  # call i to a replica that depends on the order
            await sims[(n + reverse) % 3].completion(chat(f"call {i}"))
        for r in sims:
            await r.stop()
        return first_attempts(log)

    calls = list(range(60))
    a = run_virtual(run(calls, False))
    b = run_virtual(run(calls[::-1], True))
    assert a == b and 5 < sum(a.values()) < 35


def test_a_duplicate_draws_apart_from_its_original() -> None:
    async def main() -> tuple[int, int]:
        sims = await start_replicas(
            2, fleet_config(2, engine=FAST, faults={"slow_fraction": 0.5, "seed": 3, "draws": "call"})
        )
        log: list[tuple[int, bool]] = []
        for r in sims:
            record_draws(r, log)
        for i in range(80):  # each call, then its duplicate on the other replica
            await asyncio.gather(sims[0].completion(chat(f"call {i}")), sims[1].completion(chat(f"call {i}")))
        pairs = [(log[k][1], log[k + 1][1]) for k in range(0, len(log), 2)]
        for r in sims:
            await r.stop()
        return sum(a != b for a, b in pairs), sum(a for a, _ in pairs)

    differ, slow = run_virtual(main())
    assert 20 < differ < 60 and 20 < slow < 60  # independent halves: ~40 of 80 differ


def test_the_oracles_peek_agrees_with_the_draw_and_uses_nothing_up() -> None:
    async def main() -> None:
        replica = Replica(ReplicaConfig(engine=FAST, faults=FaultConfig(slow_fraction=0.3, seed=5, draws="call")))
        await replica.start()
        with pytest.raises(ValueError):
            replica.next_call_slow()  # keyed draws need the call
        assert not replica.next_call_slow({"model": "other", "messages": [{"role": "user", "content": "x"}]})
        log: list[tuple[int, bool]] = []
        record_draws(replica, log)
        for i in range(40):
            body = chat(f"call {i % 20}")  # the second time round, each call's second attempt
            peeked = [replica.next_call_slow(body) for _ in range(3)]
            await replica.completion(body)
            assert peeked == [log[-1][1]] * 3
        assert 3 < sum(slow for _, slow in log) < 25
        await replica.stop()

    run_virtual(main())


def hedging_run(draws: str, hedging: bool, tasks: int = 24, steps: int = 8) -> tuple[dict[int, bool], int, set[int]]:
    """One run of the routing client on one seed's tasks: (first attempt slow? per logical call,
    attempts sent, the prompt keys of the calls). The history holds the replies, as an agent's
    does: the simulator answers a prompt alike on every replica, so the calls stay the same."""

    async def main() -> tuple[dict[int, bool], int, set[int]]:
        faults = {"slow_fraction": 0.08, "slow_factor": 10.0, "seed": 42, "draws": draws}
        sims = await start_replicas(4, fleet_config(4, model="m", engine=ENGINE, faults=faults))
        by_name = {r.name: r for r in sims}
        log: list[tuple[int, bool]] = []
        for r in sims:
            record_draws(r, log)
        settings = RoutingSettings(hedging=hedging, hedge_after_percentile=80, hedge_max_extra_percent=20)
        client = RoutingModelClient(
            (Tier("m", "m", settings), StaticSource([Endpoint(n, f"sim://{n}/v1") for n in by_name])),
            transport=SimTransport(by_name),
            metrics=RoutingMetrics(CollectorRegistry()),
            timeout=600.0,
            max_output_tokens=64,
            rng=random.Random(1),
        )
        rng = random.Random(9)
        plan = [(rng.uniform(0, 30), [rng.uniform(0.1, 1.0) for _ in range(steps)]) for _ in range(tasks)]

        async def task(i: int) -> None:
            start, tools = plan[i]
            await asyncio.sleep(start)
            msgs: list[dict[str, Any]] = [{"role": "user", "content": f"task {i}: find the answer " * 20}]
            for step in range(steps):
                reply = await client.complete(
                    ModelRequest(messages=list(msgs), task_id=f"t{i}", root_id=f"t{i}", step=step, kind="step")
                )
                msgs += [
                    {"role": "assistant", "content": reply.content},
                    {"role": "tool", "content": f"result {step} of task {i} " * 30},
                ]
                await asyncio.sleep(tools[step])

        await asyncio.gather(*(task(i) for i in range(tasks)))
        await client.close()
        for r in sims:
            await r.stop()
        firsts = first_attempts(log)
        return firsts, len(log), set(firsts)

    return run_virtual(main())


def test_runs_of_one_seed_with_different_hedging_meet_the_same_slow_calls() -> None:
    plain, sent_plain, calls_plain = hedging_run("call", hedging=False)
    hedged, sent_hedged, calls_hedged = hedging_run("call", hedging=True)
    assert sent_plain == 24 * 8 < sent_hedged  # hedges were sent (and moved tasks between replicas)
    assert calls_plain == calls_hedged and len(calls_plain) == 24 * 8  # the same logical calls
    assert 5 < sum(plain.values()) < 40
    assert plain == hedged  # ... and the same of them slow
    # The default draws follow each replica's call order: the same two runs meet different slow calls.
    old_plain, _, _ = hedging_run("replica", hedging=False)
    old_hedged, _, _ = hedging_run("replica", hedging=True)
    assert set(old_plain) == set(old_hedged) and old_plain != old_hedged
