"""Fused decode iterations and hashed prompts change the simulator's cost, never its results.

The same seeded traffic (agents whose prompts grow call by call, sub-agent fan-out, a client
timeout that aborts, a stall, a mid-run stats reader, a small KV pool that preempts) runs once
with one engine iteration per step and once with fused iterations: every completion's timings and
every counter and histogram must be bit-identical, mid-run reads included.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from typing import Any

import pytest

from agentfleet_sim import EngineConfig, HashedPrompt, ManualClock, Replica, ReplicaConfig, run_virtual
from agentfleet_sim.engine import Engine
from agentfleet_sim.kv_cache import block_hashes
from agentfleet_sim.runner import EngineRunner

# A small pool (preemption and head-of-line waits happen), short outputs, 16-token blocks.
ENGINE = EngineConfig(
    served_name="m",
    max_model_len=4096,
    kv_cache_tokens=4096,
    output_tokens_median=30,
    output_tokens_sigma=0.8,
    block_size=16,
)


def stats_view(replica: Replica) -> tuple[Any, ...]:
    s = replica.stats()
    hists = tuple(
        (h.counts[:], h.sum, h.count)
        for h in (s.h_ttft, s.h_itl, s.h_tpot, s.h_e2e, s.h_queue, s.h_decode, s.h_iteration_tokens)
    )
    return (
        s.busy_time_s,
        s.steps,
        s.generation_tokens,
        s.prompt_tokens,
        s.num_preemptions,
        dict(s.request_success),
        s.num_running,
        s.num_waiting,
        s.kv_usage,
        hists,
    )


def simulate(max_iterations: int, hashed: bool) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        replicas = [Replica(ReplicaConfig(engine=ENGINE), name=f"r{i}") for i in range(2)]
        for r in replicas:
            r.runner.MAX_ITERATIONS = max_iterations
            await r.start()
        rng = random.Random(7)
        calls: list[tuple[Any, ...]] = []
        reads: list[tuple[Any, ...]] = []
        fresh = iter(range(10_000, 10**9))

        def more(n: int) -> list[int]:
            return [next(fresh) for _ in range(n)]

        class Prompt:
            """The agent's prompt both ways: a token list, and hashed as it grows."""

            def __init__(self, tokens: list[int], hp: HashedPrompt) -> None:
                self.tokens, self.hp = tokens, hp

            def extend(self, more: list[int]) -> Prompt:
                return Prompt(self.tokens + more, self.hp.extend(more))

        async def call(replica: Replica, prompt: Prompt, max_tokens: int, timeout: float | None = None) -> list[int]:
            arg: Any = prompt.hp if hashed else prompt.tokens
            try:
                c = await asyncio.wait_for(replica.generate(arg, max_tokens), timeout)
            except TimeoutError:
                calls.append(("timeout", loop.time()))
                return []
            calls.append(
                (
                    c.request_id,
                    c.arrival,
                    c.first_token,
                    c.finished,
                    c.completion_tokens,
                    c.cached_tokens,
                    c.preemptions,
                    c.finish_reason,
                    c.content_seed,
                )
            )
            return more(c.completion_tokens)

        async def agent(i: int) -> None:
            await asyncio.sleep(rng.uniform(0, 20))
            replica = replicas[i % 2]
            system = list(range(1, 300))
            prompt = Prompt(system, HashedPrompt(system, ENGINE.block_size)).extend(more(rng.randint(20, 200)))
            for step in range(rng.randint(3, 6)):
                timeout = 0.3 if step == 2 and i % 5 == 0 else None  # some calls give up: aborts mid-decode
                prompt = prompt.extend(await call(replica, prompt, rng.randint(5, 120), timeout))
                if rng.random() < 0.3:
                    outs = await asyncio.gather(
                        *(call(replica, prompt.extend(more(rng.randint(10, 60))), 64) for _ in range(3))
                    )
                    prompt = prompt.extend([t for out in outs for t in out])
                await asyncio.sleep(rng.uniform(0.05, 2.0))
                prompt = prompt.extend(more(rng.randint(20, 150)))

        async def reader() -> None:
            for k in range(200):
                await asyncio.sleep(0.173 + (k % 7) * 0.01)  # mid-run reads, off the step grid
                reads.append(tuple(stats_view(r) for r in replicas))
                if k == 40:
                    replicas[1].runner.stall(1.5)

        await asyncio.gather(reader(), *(agent(i) for i in range(40)))
        out = {"calls": calls, "reads": reads, "final": [stats_view(r) for r in replicas], "end": loop.time()}
        for r in replicas:
            await r.stop()
        return out

    return run_virtual(main())


def test_fused_iterations_and_hashed_prompts_give_identical_results() -> None:
    single = simulate(1, hashed=False)
    assert sum(1 for c in single["calls"] if c[0] != "timeout") > 300
    assert any(c[0] == "timeout" for c in single["calls"])
    assert single["final"][0][4] + single["final"][1][4] > 0  # the pool was small enough to preempt
    for hashed in (False, True):
        fused = simulate(EngineRunner.MAX_ITERATIONS, hashed=hashed)
        assert fused["calls"] == single["calls"]
        assert fused["reads"] == single["reads"]
        assert fused["final"] == single["final"]
        assert fused["end"] == single["end"]


def test_fused_step_covers_the_decode_stretch_up_to_a_finish() -> None:
    eng = Engine(dataclasses.replace(ENGINE, output_length_mode="max_tokens", kv_read_s_per_token=1e-5))
    eng.add_request("a", list(range(100)), now=0.0, max_tokens=10)
    b = eng.add_request("b", list(range(200, 300)), now=0.0, max_tokens=6)
    run = eng.step(0.0, max_iterations=100)
    # The prefill carries the decode that follows it: tokens 2-6 of b, the 6th finishes b.
    assert run is not None and run.iterations == 6
    # The single steps' floats: each iteration starts at the previous end, context grows by 2.
    t = 0.0 + eng._seconds(200, 2, 200)
    for k in range(5):
        t = t + (
            ENGINE.decode_base_s + 0 / ENGINE.prefill_tokens_per_s + ENGINE.decode_per_seq_s * 2 + 1e-5 * (202 + 2 * k)
        )
    assert run.end == t
    # Nothing of the later iterations shows before they start; the finish shows at its start.
    assert eng.stats.steps == 1 and not run.events
    eng.sync(run.end - 0.005)
    assert eng.stats.steps == 6 and eng.stats.generation_tokens == 12 and b.finished_at == run.end
    assert [(e.request.request_id, e.finish_reason) for e in run.events] == [("b", "length")]
    assert (eng.num_running, eng.stats.request_success["length"]) == (1, 1)
    clock = ManualClock(run.end)
    while (r := eng.step(clock.now(), max_iterations=100)) is not None:
        clock.set(r.end)
    assert eng.stats.request_success["length"] == 2 and eng.stats.generation_tokens == 16


def test_no_fusion_mid_prefill_or_for_streams() -> None:
    chunked = Engine(dataclasses.replace(ENGINE, max_num_batched_tokens=64, output_length_mode="max_tokens"))
    chunked.add_request("a", list(range(100)), now=0.0, max_tokens=20)
    first = chunked.step(0.0, max_iterations=100)
    assert first is not None and first.iterations == 1  # 36 prompt tokens are still to prefill
    streamed = Engine(dataclasses.replace(ENGINE, output_length_mode="max_tokens"))
    streamed.add_request("s", list(range(100)), now=0.0, max_tokens=20, stream=True)
    steps = []
    t = 0.0
    while (r := streamed.step(t, max_iterations=100)) is not None:
        steps.append(r.iterations)
        t = r.end
    assert steps == [1] * 20  # every token is an event of its own


def test_a_request_added_mid_run_joins_the_next_iteration() -> None:
    eng = Engine(dataclasses.replace(ENGINE, output_length_mode="max_tokens"))
    eng.add_request("a", list(range(100)), now=0.0, max_tokens=12)
    run = eng.step(0.0, max_iterations=100)
    assert run is not None and run.iterations == 12
    prefill_end = 0.0 + eng._seconds(100, 1, 100)
    one = eng.config.decode_base_s + eng.config.decode_per_seq_s
    now = prefill_end + 1.5 * one  # inside the second decode iteration
    eng.add_request("b", list(range(500, 520)), now=now, max_tokens=3)
    assert run.iterations == 3 and run.end == pytest.approx(prefill_end + 2 * one, abs=1e-4)
    nxt = eng.step(run.end, max_iterations=100)
    assert nxt is not None and nxt.num_seqs == 2  # b's prefill rides with a's decode


def test_hashed_prompt_extends_the_same_chain() -> None:
    base = list(range(1, 40))
    p = HashedPrompt(base, 16)
    added = [7] * 5 + list(range(100, 130))
    grown = p.extend(added[:5]).extend(added[5:])
    tokens = base + added
    assert (len(grown), grown.hashes, grown.tail) == (len(tokens), block_hashes(tokens, 16), tokens[64:])
    assert (len(p), p.hashes, p.tail) == (39, block_hashes(base, 16), base[32:])  # the original is unchanged
    # The engine takes it as it takes the token list: same blocks, same answer.
    eng, ref = Engine(ENGINE), Engine(ENGINE)
    a = eng.add_request("x", grown, now=0.0, max_tokens=5)
    b = ref.add_request("x", tokens, now=0.0, max_tokens=5)
    assert (a.hashes, a.hash_tokens, a.prompt_tokens, a.content_seed, a.target_tokens) == (
        b.hashes,
        b.hash_tokens,
        b.prompt_tokens,
        b.content_seed,
        b.target_tokens,
    )
    with pytest.raises(ValueError, match="blocks of 16"):
        Engine(dataclasses.replace(ENGINE, block_size=32)).add_request("y", grown, now=0.0, max_tokens=5)
