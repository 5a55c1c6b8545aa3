"""/metrics exposition, parsed back with prometheus_client's own text parser.

The expected names, types, labels and buckets are written out here literally (from vLLM's
vllm/v1/metrics/loggers.py and buckets.py, see agentfleet_sim.metrics_spec) so that a change
to the spec module cannot silently change what the simulator claims vLLM exposes.
"""

from __future__ import annotations

import dataclasses

from prometheus_client.parser import text_string_to_metric_families

from agentfleet_sim import Engine, EngineConfig, Flavor, ManualClock, exposed_names, render_metrics
from agentfleet_sim.metrics_spec import build_1_2_5_buckets

# Family name as the parser reports it (counters without _total) -> type.
CURRENT = {
    "vllm:num_requests_running": "gauge",
    "vllm:num_requests_waiting": "gauge",
    "vllm:kv_cache_usage_perc": "gauge",
    "vllm:prefix_cache_queries": "counter",
    "vllm:prefix_cache_hits": "counter",
    "vllm:prompt_tokens": "counter",
    "vllm:generation_tokens": "counter",
    "vllm:request_success": "counter",
    "vllm:num_preemptions": "counter",
    "vllm:time_to_first_token_seconds": "histogram",
    "vllm:inter_token_latency_seconds": "histogram",
    "vllm:request_time_per_output_token_seconds": "histogram",
    "vllm:e2e_request_latency_seconds": "histogram",
    "vllm:request_queue_time_seconds": "histogram",
    "vllm:request_prefill_time_seconds": "histogram",
    "vllm:request_decode_time_seconds": "histogram",
    "vllm:request_inference_time_seconds": "histogram",
    "vllm:request_prompt_tokens": "histogram",
    "vllm:request_generation_tokens": "histogram",
    "vllm:request_params_max_tokens": "histogram",
    "vllm:iteration_tokens_total": "histogram",
    "vllm:cache_config_info": "gauge",
}
LEGACY_SWAP = {
    "vllm:kv_cache_usage_perc": ("vllm:gpu_cache_usage_perc", "gauge"),
    "vllm:prefix_cache_queries": ("vllm:gpu_prefix_cache_queries", "counter"),
    "vllm:prefix_cache_hits": ("vllm:gpu_prefix_cache_hits", "counter"),
    "vllm:inter_token_latency_seconds": ("vllm:time_per_output_token_seconds", "histogram"),
    "vllm:request_time_per_output_token_seconds": (None, None),
}
TTFT = [
    0.001,
    0.005,
    0.01,
    0.02,
    0.04,
    0.06,
    0.08,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
    20.0,
    40.0,
    80.0,
    160.0,
    640.0,
    2560.0,
]
ITL = [0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0]
LATENCY = [
    0.3,
    0.5,
    0.8,
    1.0,
    1.5,
    2.0,
    2.5,
    5.0,
    10.0,
    15.0,
    20.0,
    30.0,
    40.0,
    50.0,
    60.0,
    120.0,
    240.0,
    480.0,
    960.0,
    1920.0,
    7680.0,
]
ITERATION = [1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]
MAX_MODEL_LEN = 32768
TOKENS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000]
BUCKETS = {
    "vllm:time_to_first_token_seconds": TTFT,
    "vllm:inter_token_latency_seconds": ITL,
    "vllm:time_per_output_token_seconds": ITL,
    "vllm:request_time_per_output_token_seconds": ITL,
    "vllm:e2e_request_latency_seconds": LATENCY,
    "vllm:request_queue_time_seconds": LATENCY,
    "vllm:request_prefill_time_seconds": LATENCY,
    "vllm:request_decode_time_seconds": LATENCY,
    "vllm:request_inference_time_seconds": LATENCY,
    "vllm:request_prompt_tokens": TOKENS,
    "vllm:request_generation_tokens": TOKENS,
    "vllm:request_params_max_tokens": TOKENS,
    "vllm:iteration_tokens_total": ITERATION,
}


def busy_engine() -> Engine:
    cfg = EngineConfig(
        served_name="llama-8b", max_model_len=MAX_MODEL_LEN, kv_cache_tokens=64_000, output_tokens_median=20
    )
    eng, clock = Engine(cfg), ManualClock()
    shared = list(range(500, 900))
    for i in range(6):
        eng.add_request(f"r{i}", shared + [i] * 30, now=clock.now(), max_tokens=25)
    while (step := eng.step(clock.now())) is not None:
        clock.set(step.end)
    eng.add_request("queued", shared, now=clock.now())  # leaves a waiting request
    return eng


def parse(text: bytes) -> dict[str, object]:
    return {f.name: f for f in text_string_to_metric_families(text.decode())}


def test_current_names_types_labels_and_buckets_match_vllm() -> None:
    families = parse(render_metrics(busy_engine(), Flavor.CURRENT))
    assert {name: f.type for name, f in families.items()} == CURRENT
    for name, family in families.items():
        for sample in family.samples:
            if name == "vllm:cache_config_info":
                continue
            assert sample.labels["model_name"] == "llama-8b" and sample.labels["engine"] == "0", sample
            extra = set(sample.labels) - {"model_name", "engine"}
            if family.type == "histogram" and sample.name.endswith("_bucket"):
                assert extra == {"le"}
            elif name == "vllm:request_success":
                assert extra == {"finished_reason"}
            else:
                assert not extra, sample
            if family.type == "counter":
                assert sample.name == name + "_total"  # no _created series, as in vLLM
        if family.type == "histogram":
            bounds = [float(s.labels["le"]) for s in family.samples if s.name.endswith("_bucket")]
            assert bounds == [float(b) for b in BUCKETS[name]] + [float("inf")], name
            assert {s.name for s in family.samples} == {name + "_bucket", name + "_sum", name + "_count"}
    reasons = {s.labels["finished_reason"] for s in families["vllm:request_success"].samples}
    assert reasons == {"stop", "length", "abort", "error", "repetition"}


def test_values_reflect_the_engine() -> None:
    eng = busy_engine()
    families = parse(render_metrics(eng))

    def value(name: str, **labels: str) -> float:
        family = families[name]
        for s in family.samples:  # type: ignore[attr-defined]
            if all(s.labels.get(k) == v for k, v in labels.items()) and not s.name.endswith(("_bucket", "_sum")):
                return s.value
        raise KeyError(name)

    assert value("vllm:num_requests_waiting") == 1
    assert value("vllm:num_requests_running") == 0
    assert value("vllm:prompt_tokens") == 6 * 430
    assert value("vllm:prefix_cache_queries") == 6 * 430
    assert value("vllm:prefix_cache_hits") == 5 * 400  # the shared 400-token prefix, 25 full blocks
    assert value("vllm:generation_tokens") == eng.stats.generation_tokens > 0
    finished = value("vllm:request_success", finished_reason="stop") + value(
        "vllm:request_success", finished_reason="length"
    )
    assert finished == 6
    assert value("vllm:time_to_first_token_seconds") == 6  # _count
    assert value("vllm:inter_token_latency_seconds") == eng.stats.generation_tokens - 6


def test_legacy_flavor_speaks_the_old_names_only() -> None:
    families = parse(render_metrics(busy_engine(), Flavor.LEGACY))
    expected = dict(CURRENT)
    for new, (old, kind) in LEGACY_SWAP.items():
        del expected[new]
        if old is not None:
            expected[old] = kind
    assert {name: f.type for name, f in families.items()} == expected
    assert not any(
        n in families for n in ("vllm:kv_cache_usage_perc", "vllm:prefix_cache_queries", "vllm:prefix_cache_hits")
    )


def test_exposed_names_as_prometheus_stores_them() -> None:
    names = exposed_names(Flavor.CURRENT)
    assert {"vllm:prefix_cache_queries_total", "vllm:prefix_cache_hits_total", "vllm:kv_cache_usage_perc"} <= names
    assert "vllm:gpu_cache_usage_perc" in exposed_names(Flavor.LEGACY)
    assert build_1_2_5_buckets(MAX_MODEL_LEN) == tuple(TOKENS)


def test_token_histogram_buckets_follow_max_model_len() -> None:
    eng = Engine(dataclasses.replace(EngineConfig(), max_model_len=1024, kv_cache_tokens=4096))
    families = parse(render_metrics(eng))
    bounds = [
        float(s.labels["le"]) for s in families["vllm:request_prompt_tokens"].samples if s.name.endswith("_bucket")
    ]
    assert bounds == [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, float("inf")]
