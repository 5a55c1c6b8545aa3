"""The pure engine on a hand-moved clock: batching, queueing, prefix cache, preemption, timing."""

from __future__ import annotations

import dataclasses

import pytest

from agentfleet_sim import ChatTokenizer, Engine, EngineConfig, ManualClock, RequestTooLong, StepResult
from agentfleet_sim.kv_cache import block_hashes

# Round numbers so step times can be checked exactly.
TIMING = EngineConfig(
    max_model_len=4096,
    kv_cache_tokens=16 * 1024,
    prefill_tokens_per_s=1000.0,
    decode_base_s=0.010,
    decode_per_seq_s=0.001,
    kv_read_s_per_token=0.0,
    max_num_batched_tokens=2048,
)


def engine(**changes: object) -> Engine:
    return Engine(dataclasses.replace(TIMING, **changes))


def run_until_idle(eng: Engine, clock: ManualClock, max_steps: int = 100_000) -> list[StepResult]:
    results = []
    for _ in range(max_steps):
        result = eng.step(clock.now())
        if result is None:
            return results
        clock.set(result.end)
        results.append(result)
    raise AssertionError("engine did not go idle")


def prompt(n: int, salt: int = 0) -> list[int]:
    return [1000 + salt * 7919 + i for i in range(n)]


def test_prefill_then_decode_step_times_are_exact() -> None:
    eng, clock = engine(), ManualClock()
    req = eng.add_request("a", prompt(100), now=0.0, max_tokens=3, ignore_eos=True)
    steps = run_until_idle(eng, clock)
    # prefill: 10 ms base + 100 tokens / 1000 tok/s + 1 seq x 1 ms; then two decode steps of 11 ms.
    assert [round(s.duration, 9) for s in steps] == [0.111, 0.011, 0.011]
    assert req.first_token == pytest.approx(0.111)
    assert req.finished_at == pytest.approx(0.133)
    assert req.finish_reason == "length"
    s = eng.stats
    assert s.h_ttft.sum == pytest.approx(0.111) and s.h_ttft.count == 1
    assert s.h_itl.count == 2 and s.h_itl.sum == pytest.approx(0.022)
    assert s.h_tpot.sum == pytest.approx(0.011)
    assert s.h_e2e.sum == pytest.approx(0.133)
    assert s.h_prefill.sum == pytest.approx(0.111) and s.h_decode.sum == pytest.approx(0.022)
    assert (s.prompt_tokens, s.generation_tokens) == (100, 3)


def test_decode_step_grows_with_batch_size() -> None:
    eng, clock = engine(), ManualClock()
    for i in range(4):
        eng.add_request(f"r{i}", prompt(10, i), now=0.0, max_tokens=5, ignore_eos=True)
    steps = run_until_idle(eng, clock)
    assert steps[0].num_seqs == 4 and steps[0].duration == pytest.approx(0.010 + 0.040 + 0.004)
    assert all(s.duration == pytest.approx(0.010 + 4 * 0.001) for s in steps[1:])

    kv = engine(kv_read_s_per_token=1e-5)
    kv.add_request("x", prompt(100), now=0.0, max_tokens=2, ignore_eos=True)
    first, second = run_until_idle(kv, ManualClock())
    # The decode step attends 101 context tokens.
    assert second.duration == pytest.approx(0.010 + 0.001 + 101 * 1e-5)


def test_chunked_prefill_respects_the_token_budget() -> None:
    eng, clock = engine(max_num_batched_tokens=512), ManualClock()
    req = eng.add_request("long", prompt(1500), now=0.0, max_tokens=1)
    steps = run_until_idle(eng, clock)
    assert [s.num_tokens for s in steps] == [512, 512, 476]
    assert req.first_token == pytest.approx(steps[-1].end)


def test_batching_never_exceeds_max_num_seqs_and_the_rest_queues() -> None:
    eng, clock = engine(max_num_seqs=2), ManualClock()
    for i in range(5):
        eng.add_request(f"r{i}", prompt(20, i), now=0.0, max_tokens=4, ignore_eos=True)
    first = eng.step(clock.now())
    assert first is not None and first.num_seqs == 2
    assert (eng.num_running, eng.num_waiting) == (2, 3)
    assert (eng.stats.num_running, eng.stats.num_waiting) == (2, 3)
    clock.set(first.end)
    steps = run_until_idle(eng, clock)
    assert max(s.num_seqs for s in steps) == 2
    assert eng.stats.request_success["length"] == 5
    # Later requests waited in the queue: queue time observed > 0.
    assert eng.stats.h_queue.sum > 0


def test_requests_wait_for_free_kv_blocks() -> None:
    # 20 blocks of 16 tokens; each request needs 7 blocks (100 prompt + a few output tokens).
    eng, clock = engine(kv_cache_tokens=320, max_model_len=300), ManualClock()
    for i in range(3):
        eng.add_request(f"r{i}", prompt(100, i), now=0.0, max_tokens=8, ignore_eos=True)
    step = eng.step(clock.now())
    assert step is not None and step.num_seqs == 2
    assert eng.num_waiting == 1
    assert eng.stats.kv_usage == pytest.approx(14 / 20)
    clock.set(step.end)
    run_until_idle(eng, clock)
    assert eng.stats.request_success["length"] == 3
    assert eng.stats.kv_usage == 0.0


def test_preemption_when_blocks_run_out_during_decode() -> None:
    # Two 150-token prompts take 10 blocks each = the whole pool; the first decode token that
    # crosses a block boundary (token 161) needs an 11th block, so the newer request is preempted.
    eng, clock = engine(kv_cache_tokens=320, max_model_len=300), ManualClock()
    a = eng.add_request("a", prompt(150, 1), now=0.0, max_tokens=20, ignore_eos=True)
    b = eng.add_request("b", prompt(150, 2), now=0.0, max_tokens=20, ignore_eos=True)
    run_until_idle(eng, clock)
    assert eng.stats.num_preemptions >= 1
    assert b.preemptions >= 1 and a.preemptions == 0
    assert a.num_output == b.num_output == 20
    assert eng.stats.request_success["length"] == 2
    # b's prompt blocks stayed cached while it was out, so its recompute was mostly cache hits;
    # prefix-cache counters count b's first admission only.
    assert eng.stats.prefix_queries == 300


def test_growing_agent_history_hits_the_prefix_cache() -> None:
    tok = ChatTokenizer()
    eng, clock = engine(), ManualClock()
    history = [
        {"role": "system", "content": "You are a careful agent. " * 40},
        {"role": "user", "content": "Find the failing pod and explain why it fails."},
    ]
    first_prompt = tok.chat_prompt(history)
    eng.add_request("call-1", first_prompt, now=0.0, max_tokens=5)
    run_until_idle(eng, clock)
    history += [
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "kubectl", "arguments": '{"get": "pods"}'}}],
        },
        {"role": "tool", "content": "pod-a CrashLoopBackOff\npod-b Running"},
    ]
    second_prompt = tok.chat_prompt(history)
    # The new prompt extends the old one message by message (only the generation prompt differs).
    shared = len(first_prompt) - 2
    assert second_prompt[:shared] == first_prompt[:shared]
    second = eng.add_request("call-2", second_prompt, now=clock.now(), max_tokens=5)
    run_until_idle(eng, clock)
    assert second.cached_tokens == shared // 16 * 16
    assert eng.stats.prefix_queries == len(first_prompt) + len(second_prompt)
    assert eng.stats.prefix_hits == second.cached_tokens
    # Prefill of the second call only computed the uncached tail: a much shorter TTFT.
    assert second.first_token - second.arrival < 0.25 * eng.stats.h_ttft.sum


def test_full_prompt_hit_still_computes_one_token() -> None:
    eng, clock = engine(), ManualClock()
    p = prompt(64)  # exactly 4 blocks
    eng.add_request("a", p, now=0.0, max_tokens=1)
    run_until_idle(eng, clock)
    again = eng.add_request("b", p, now=clock.now(), max_tokens=1)
    run_until_idle(eng, clock)
    assert again.cached_tokens == 48  # at most prompt - 1 tokens, in whole blocks


def test_lru_eviction_of_unreferenced_cached_blocks() -> None:
    # 40 blocks. A then B (10 blocks each) finish and stay cached; a 400-token request C needs
    # 25 blocks: the 20 never-used blocks, then the 5 least recently freed cached ones, which are
    # the tail of A (freed first, tail first). A keeps its first 5 blocks, B all 10.
    eng, clock = engine(kv_cache_tokens=640, max_model_len=640), ManualClock()
    pa, pb, pc = prompt(160, 1), prompt(160, 2), prompt(400, 3)
    for name, p in (("a", pa), ("b", pb), ("c", pc)):
        eng.add_request(name, p, now=clock.now(), max_tokens=1)
        run_until_idle(eng, clock)
    assert eng.pool.evictions == 5
    assert len(eng.pool.lookup(block_hashes(pa, 16), 100)) == 5
    assert len(eng.pool.lookup(block_hashes(pb, 16), 100)) == 10


def test_prefix_caching_can_be_disabled() -> None:
    eng, clock = engine(enable_prefix_caching=False), ManualClock()
    for name in ("a", "b"):
        eng.add_request(name, prompt(200), now=clock.now(), max_tokens=1)
        run_until_idle(eng, clock)
    assert eng.stats.prefix_hits == 0


def test_output_is_deterministic_and_capped_by_max_tokens() -> None:
    cfg = dataclasses.replace(TIMING, output_tokens_median=40.0, seed=7)
    lengths = []
    for _ in range(2):
        eng, clock = Engine(cfg), ManualClock()
        reqs = [eng.add_request(f"r{i}", prompt(30, i), now=0.0, max_tokens=60) for i in range(30)]
        run_until_idle(eng, clock)
        lengths.append([(r.num_output, r.finish_reason, r.content_seed) for r in reqs])
    assert lengths[0] == lengths[1]
    outputs = [n for n, _, _ in lengths[0]]
    assert min(outputs) >= 1 and max(outputs) <= 60
    assert {reason for _, reason, _ in lengths[0]} == {"stop", "length"}
    assert all(reason == "length" for n, reason, _ in lengths[0] if n == 60)


def test_too_long_requests_are_refused_and_aborts_free_blocks() -> None:
    eng = engine(max_model_len=200, kv_cache_tokens=1024)
    with pytest.raises(RequestTooLong, match="maximum context length is 200"):
        eng.add_request("x", prompt(150), now=0.0, max_tokens=100)
    req = eng.add_request("y", prompt(150), now=0.0)
    assert req.max_tokens == 50  # default: the room left in the context
    eng.step(0.0)
    assert eng.pool.usage() > 0
    assert eng.abort("y", now=0.5)
    assert eng.pool.usage() == 0.0 and not eng.has_work()
    assert eng.stats.request_success["abort"] == 1
    assert not eng.abort("y", now=0.6)


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="max_model_len"):
        Engine(dataclasses.replace(TIMING, kv_cache_tokens=1000, max_model_len=4096))
