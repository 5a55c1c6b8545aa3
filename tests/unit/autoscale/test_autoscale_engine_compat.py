"""The autoscaler's inputs on vLLM-compatible engines that are not vLLM (agentfleet_sim.quirks).

The engines are the simulator's; their histograms feed the same goodput arithmetic the
Prometheus reader uses, so each test reproduces one measured engine behaviour.
"""

from __future__ import annotations

import random

from agentfleet.autoscale.goodput import objectives_from_slo
from agentfleet.autoscale.witness import QUEUE_METRIC, goodput_with_witnesses, witness_metrics
from agentfleet.promql import completion_rate_query, schema_problem
from agentfleet_sim import Engine, EngineConfig, Flavor, ManualClock, exposed_names

ENGINE = EngineConfig(
    served_name="m",
    model="m",
    max_model_len=4096,
    kv_cache_tokens=64 * 1024,
    prefill_tokens_per_s=50_000.0,
    decode_base_s=0.01,
    decode_per_seq_s=0.0,
    kv_read_s_per_token=0.0,
    max_num_seqs=8,
    output_length_mode="max_tokens",
)


def with_buckets(names: set[str]) -> set[str]:
    return names | {n + "_bucket" for n in names}


def test_removed_name_beside_its_replacement_is_no_schema_mismatch() -> None:
    # The engine measured for issue 18 exports vllm:time_per_output_token_seconds beside the
    # current names: every name the autoscaler needs is there.
    assert schema_problem(with_buckets(exposed_names(Flavor.BOTH))) is None
    legacy_only = schema_problem(with_buckets(exposed_names(Flavor.LEGACY)))
    assert legacy_only is not None and "vllm:gpu_cache_usage_perc (now vllm:kv_cache_usage_perc)" in legacy_only
    one_missing = with_buckets(exposed_names(Flavor.BOTH)) - {"vllm:request_time_per_output_token_seconds_bucket"}
    problem = schema_problem(one_missing)
    assert (
        problem is not None
        and "vllm:time_per_output_token_seconds_bucket (now vllm:request_time_per_output_token_seconds_bucket)"
        in problem
    )


def closed_loop(ttft_from_scheduling: bool, clients: int = 120, seconds: float = 60.0) -> Engine:
    """``clients`` closed-loop clients on one replica of 8 slots: a long queue, as measured."""
    eng = Engine(ENGINE)
    eng.ttft_from_scheduling = ttft_from_scheduling
    clock = ManualClock()
    ids = iter(range(10**9))
    for c in range(clients):
        eng.add_request(f"r{next(ids)}", [1000 + c] * 200, now=0.0, max_tokens=30)
    while clock.now() < seconds and (result := eng.step(clock.now())) is not None:
        clock.set(result.end)
        for ev in result.events:
            if ev.finish_reason is not None:  # the client sends its next call at once
                eng.add_request(f"r{next(ids)}", [1000 + next(ids) % 997] * 200, now=result.end, max_tokens=30)
    return eng


def buckets(eng: Engine) -> dict[str, list[tuple[float, float]]]:
    s = eng.stats
    return {
        "vllm:time_to_first_token_seconds": [(le, float(c)) for le, c in s.h_ttft.cumulative()],
        "vllm:request_time_per_output_token_seconds": [(le, float(c)) for le, c in s.h_tpot.cumulative()],
        QUEUE_METRIC: [(le, float(c)) for le, c in s.h_queue.cumulative()],
    }


def test_goodput_sees_queue_time_when_the_engine_starts_ttft_at_scheduling() -> None:
    objectives = objectives_from_slo(2000, 100, 0)
    assert QUEUE_METRIC in witness_metrics(objectives)
    vllm, other = closed_loop(False), closed_loop(True)
    mean_queue = other.stats.h_queue.sum / other.stats.h_queue.count
    assert mean_queue > 2.0  # clients wait seconds in the queue
    # The other engine's own TTFT histogram says every request met the 2 s SLO ...
    ttft_only = {k: v for k, v in buckets(other).items() if k != QUEUE_METRIC}
    assert goodput_with_witnesses(objectives, ttft_only).fraction == 1.0
    # ... the queue witness says otherwise, and agrees with vLLM's own TTFT (from arrival).
    seen = goodput_with_witnesses(objectives, buckets(other))
    truth = goodput_with_witnesses(objectives, buckets(vllm)).fraction
    assert seen.fraction is not None and truth is not None
    assert seen.fraction < 0.2 and abs(seen.fraction - truth) < 0.1, (seen.fraction, truth)
    assert any("queued longer than 2s" in n for n in seen.notes), seen.notes


def test_queue_witness_never_lowers_goodput_without_queueing() -> None:
    idle = closed_loop(True, clients=4, seconds=20.0)
    gp = goodput_with_witnesses(objectives_from_slo(2000, 100, 0), buckets(idle))
    assert gp.fraction == 1.0 and not any("queued" in n for n in gp.notes), gp.notes


def open_loop(rate: float, peer: bool, seconds: float = 60.0, seed: int = 1) -> Engine:
    """Poisson arrivals at ``rate``/s on one replica of 8 slots (about 25 requests/s at most):
    near capacity, some requests wait for a slot and most do not. ``peer``: TTFT from scheduling
    and queue time observed only for the requests that waited (llm-d's simulator)."""
    eng = Engine(ENGINE)
    eng.ttft_from_scheduling = eng.queue_time_waiters_only = peer
    rng = random.Random(seed)
    arrivals: list[float] = []
    t = rng.expovariate(rate)
    while t < seconds:
        arrivals.append(t)
        t += rng.expovariate(rate)
    now, i = 0.0, 0
    while i < len(arrivals) or eng.has_work():
        result = eng.step(now) if eng.has_work() else None
        until = result.end if result is not None else arrivals[i]
        while i < len(arrivals) and arrivals[i] <= until:
            eng.add_request(f"r{i}", [1000 + i % 997 + j for j in range(200)], now=max(arrivals[i], now), max_tokens=30)
            i += 1
        now = until
    return eng


def test_queue_witness_stays_an_upper_bound_when_only_waiters_observe_queue_time() -> None:
    # Issue 46: llm-d's simulator observes queue time only for requests that waited; dividing its
    # misses by that count put the witness below the clients' attainment (0.767 vs 0.805 measured).
    objectives = objectives_from_slo(500, 100, 0)
    peer = open_loop(22.0, peer=True)
    assert peer.stats.h_queue.count < 0.7 * peer.stats.h_ttft.count  # most requests never waited
    seen = goodput_with_witnesses(objectives, buckets(peer)).fraction
    truth = goodput_with_witnesses(objectives, buckets(open_loop(22.0, peer=False))).fraction  # TTFT from arrival
    assert seen is not None and truth is not None and truth < 0.95  # queueing cost some requests the SLO
    assert truth <= seen <= truth + 0.03, (seen, truth)


def test_completion_rate_counts_every_served_reason_under_either_label_spelling() -> None:
    q = completion_rate_query('{job="sim"}', 30)
    served = '{label}=~".+",{label}!~"abort|error|repetition"'
    fin, finish = served.format(label="finished_reason"), served.format(label="finish_reason")
    assert q == (
        f'sum(rate(vllm:request_success_total{{job="sim",{fin}}}[30s])'
        f' or rate(vllm:request_success_total{{job="sim",{finish}}}[30s]))'
    )
