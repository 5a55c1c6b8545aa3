"""The autoscaler's inputs on vLLM-compatible engines that are not vLLM (agentfleet_sim.quirks).

The engines are the simulator's; their histograms feed the same goodput arithmetic the
Prometheus reader uses, so each test reproduces one measured engine behaviour.
"""

from __future__ import annotations

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
    assert problem is not None and "vllm:time_per_output_token_seconds_bucket (now vllm:request_time_per_output_token_seconds_bucket)" in problem


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


def test_completion_rate_counts_answers_only_under_either_label_spelling() -> None:
    q = completion_rate_query('{job="sim"}', 30)
    assert q == (
        'sum(rate(vllm:request_success_total{job="sim",finished_reason=~"stop|length"}[30s])'
        ' or rate(vllm:request_success_total{job="sim",finish_reason=~"stop|length"}[30s]))'
    )
    assert "abort" not in q and "error" not in q and "repetition" not in q
