"""The capacity model's admission words, edges and small terms, against hand-computed figures.

Written for issue 21's mutation testing of agentfleet/capacity: each test pins a behaviour that a
surviving mutant changed (see the dated log 2026-11-25-mutation-history in git history, "Sixth round: capacity").
"""

from __future__ import annotations

from dataclasses import replace

import pytest
from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec

from agentfleet.capacity import (
    Assessment,
    CapacityError,
    GiB,
    KiB,
    MiB,
    ServingConfig,
    WorkloadProfile,
    assess,
    blocks_for,
    concurrent_sequences,
    effective_weight_bits,
    explicit_shape,
    fit_problems,
    format_quantity,
    gib,
    gpu_memory_bytes_for,
    kv_element_bytes,
    kv_tokens,
    parse_parameters,
    parse_quantity,
    recommended_tp,
    replica_capacity,
    resolve_shape,
    serving_config,
    shared_prefix_sequences,
    size_fleet,
    smallest_fitting_tp,
)
from agentfleet.catalog import ModelShape, lookup
from tests.unit.capacity.test_capacity_model import _replica


def spec(**kw) -> ModelReplicaSetSpec:
    return ModelReplicaSetSpec.model_validate(kw)


# A made-up model whose figures are whole GiB: 2^31 parameters in 16 bit are 4 GiB of weights; 8
# layers x 4 KV heads x head dim 64 x 2 (key and value) x 2 bytes = 8 KiB of KV per token.
TINY_GEOMETRY = {"parameters": "2147483648", "layers": 8, "kvHeads": 4, "headDim": 64}
# The same with 2^29 parameters: 1 GiB of weights.
SMALL_GEOMETRY = {**TINY_GEOMETRY, "parameters": "536870912"}


def tiny(geometry: dict = TINY_GEOMETRY, **engine) -> ModelReplicaSetSpec:
    """On 8 GiB GPUs at utilization 0.75: 6 GiB usable per GPU."""
    return spec(
        model={"name": "my-org/tiny", "geometry": geometry},
        engine={"maxModelLen": 4096, "gpuMemoryUtilization": 0.75, **engine},
        gpu={"memory": "8Gi"},
    )


# --- refusals, word for word ------------------------------------------------------------------


def test_a_model_whose_weights_do_not_fit_is_refused_with_its_figures_and_the_smallest_tp() -> None:
    # Pins fit_problems' weights message and _suggestion's smallest TP, and that a replica with
    # exactly 0 bytes left for KV does not fit. 4 GiB of weights on 6 GiB usable per GPU:
    # TP 1: 6 - 3 (reserve) - 4 = -1 GiB; TP 2: 12 - 2 x 5 - 4 = -2; TP 4: 24 - 4 x 5 - 4 = 0,
    # no room for one token; TP 8: 48 - 40 - 4 = 4 GiB, 4 GiB / (16 x 16 KiB: TP 8 stores 8 KV
    # heads, twice the model's 4) = 16,384 blocks = 262,144 tokens. TP 8 leaves 4/48 = 8 % and
    # no TP up to 128 reaches 25 % (5 GiB of every GPU's 6 is reserve), so nothing is recommended.
    a = assess(tiny())
    assert not a.ok
    assert a.errors == (
        "tiny does not fit at tensorParallelSize 1 x pipelineParallelSize 1: its weights take 4.0 GiB "
        "(2.15B parameters x 16 bit) but 1 x 8.0 GiB GPU x 0.75 utilization = 6.0 GiB usable, minus 3.0 GiB "
        "working reserve leaves 3.0 GiB; the smallest tensorParallelSize that fits is 8 (4.0 GiB KV, 262,144 tokens)",
    )
    assert a.warnings == ()
    four = replica_capacity(a.shape, replace(a.config, tensor_parallel=4))
    assert four.kv_free_bytes == 0 and not four.weights_fit and not four.fits


def test_a_refusal_names_the_recommended_tp_and_its_figures() -> None:
    # Pins the recommended-TP clause of the refusal. Llama 3.1 70B (131.4 GiB of weights) on one
    # H100 (81,559 MiB = 79.6 GiB x 0.90 = 71.7 GiB usable): TP 2 fits with 1.9 GiB of KV (6,384
    # tokens of 320 KiB), TP 4 leaves 135.3 GiB (443,392 tokens), 25 % of its usable memory.
    a = assess(
        spec(
            model={"name": "meta-llama/Llama-3.1-70B-Instruct"},
            engine={"maxModelLen": 4096},
            gpu={"product": "NVIDIA-H100-80GB-HBM3"},
        )
    )
    assert a.errors == (
        "Llama-3.1-70B-Instruct does not fit at tensorParallelSize 1 x pipelineParallelSize 1: its weights take 131.4 "
        "GiB "
        "(70.55B parameters x 16 bit) but 1 x 79.6 GiB GPU x 0.90 utilization = 71.7 GiB usable, minus 3.0 GiB working "
        "reserve leaves 68.7 GiB; the smallest tensorParallelSize that fits is 2 (1.9 GiB KV, 6,384 tokens); "
        "4 is recommended for KV headroom (135.3 GiB KV, 443,392 tokens)",
    )
    assert a.shape_source == "catalog:llama-3.x-70b" and a.memory_source == "known memory of NVIDIA-H100-80GB-HBM3"


def test_a_context_longer_than_the_kv_cache_is_refused_word_for_word() -> None:
    # Pins the second refusal: the weights load at TP 2 but 6,384 tokens of KV hold no 131,072-token
    # sequence; the fix names the largest maxModelLen that fits and, joined by "or", TP 4.
    a = assess(
        spec(
            model={"name": "meta-llama/Llama-3.1-70B-Instruct"},
            engine={"tensorParallelSize": 2},
            gpu={"product": "NVIDIA-H100-80GB-HBM3"},
        )
    )
    assert a.errors == (
        "Llama-3.1-70B-Instruct at tensorParallelSize 2 x pipelineParallelSize 1 loads (131.4 GiB of weights) but its "
        "1.9 GiB KV cache holds 6,384 tokens, fewer than one sequence of maxModelLen 131,072: vLLM refuses to start; "
        "lower spec.engine.maxModelLen to at most 6,384 or the smallest tensorParallelSize that fits is 4 "
        "(135.3 GiB KV, 443,392 tokens)",
    )


def test_a_model_no_tensor_parallel_size_fits_is_refused_with_the_other_fixes() -> None:
    # Pins _suggestion's last resort. 10^12 parameters in 16 bit = 1,862.6 GiB; 128 GPUs of 16 GiB
    # x 0.9 = 1,843.2 GiB usable, less 128 x 5 GiB of reserve: 1,203.2 GiB, short of the weights.
    a = assess(
        spec(
            model={"name": "my-org/huge", "geometry": {"parameters": "1T", "layers": 10, "kvHeads": 8, "headDim": 128}},
            engine={"maxModelLen": 4096},
            gpu={"memory": "16Gi"},
        )
    )
    assert a.errors == (
        "huge does not fit at tensorParallelSize 1 x pipelineParallelSize 1: its weights take 1862.6 GiB "
        "(1000.00B parameters x 16 bit) but 1 x 16.0 GiB GPU x 0.90 utilization = 14.4 GiB usable, minus 3.0 GiB "
        "working reserve leaves 11.4 GiB; no tensorParallelSize up to 128 fits: raise pipelineParallelSize, "
        "use a quantised checkpoint, an fp8 KV cache or GPUs with more memory",
    )


def test_both_head_count_problems_are_reported_and_stop_the_fit_check() -> None:
    # Pins that fit_problems reports each head rule with its figures, both at once, and returns
    # before the memory check (a 6-head model at TP 4 would not fit in 1 GiB either). 6 attention
    # heads and 6 KV heads: 4 divides neither, and 6 is no multiple of 4.
    shape = ModelShape(parameters=10**9, layers=2, kv_heads=6, head_dim=64, attention_heads=6, family="six")
    cfg = ServingConfig(gpu_memory_bytes=GiB, tensor_parallel=4)
    assert fit_problems(shape, cfg) == [
        "tensorParallelSize 4 neither divides nor is a multiple of the 6 KV heads of six",
        "tensorParallelSize 4 does not divide the 6 attention heads of six",
    ]
    # A shape without a family is "the model"; TP 3 is a multiple of 1 KV head but divides no 4 heads.
    anon = ModelShape(parameters=10**9, layers=2, kv_heads=1, head_dim=64, attention_heads=4)
    assert fit_problems(anon, replace(cfg, tensor_parallel=3)) == [
        "tensorParallelSize 3 does not divide the 4 attention heads of the model"
    ]
    # KV heads a multiple of TP (8 of 2) and TP a multiple of KV heads (4 of 2) are both accepted.
    # The parameter count is printed in billions to two decimals: 1,234,995,001,000 is 1235.00B
    # (1,234.995001 rounds up).
    (msg,) = fit_problems(ModelShape(parameters=1_234_995_001_000, layers=2, kv_heads=1, head_dim=64), cfg)
    assert "(1235.00B parameters x 16 bit)" in msg
    ok = ModelShape(parameters=10**6, layers=2, kv_heads=8, head_dim=64, attention_heads=8)
    assert fit_problems(ok, ServingConfig(gpu_memory_bytes=80 * GiB, tensor_parallel=2)) == []
    two = ModelShape(parameters=10**6, layers=2, kv_heads=2, head_dim=64)
    assert fit_problems(two, ServingConfig(gpu_memory_bytes=80 * GiB, tensor_parallel=4)) == []


# --- warnings, word for word ------------------------------------------------------------------


def test_each_missing_figure_warns_with_the_field_that_would_give_it() -> None:
    # Pins the three warnings' words: an unknown family, unknown GPU memory, unknown context (a
    # geometry of a model the catalog does not know and no maxModelLen).
    unknown = assess(spec(model={"name": "my-org/custom"}))
    assert unknown.warnings == (
        "model 'my-org/custom' is not a known family: set spec.model.geometry to get capacity figures and fit checks",
    )
    assert (unknown.shape, unknown.shape_source, unknown.capacity, unknown.errors) == (None, "", None, ())
    no_memory = assess(spec(model={"name": "Qwen/Qwen2.5-7B-Instruct-AWQ"}))
    assert no_memory.warnings == (
        "GPU memory unknown: set spec.gpu.memory or spec.gpu.product, or label the nodes with nvidia.com/gpu.memory",
    )
    assert no_memory.shape_source == "catalog:qwen2.5-7b" and no_memory.capacity is None and no_memory.ok
    # An AWQ checkpoint is 4 bit: 7,615,616,512 parameters x 4 / 8 = 3,807,808,256 B; no memory,
    # so no other figure.
    assert no_memory.status().wire() == {"weightsBytes": 3_807_808_256}
    # 1 GiB of weights on 6 GiB usable leaves 2 GiB = 262,144 tokens of 8 KiB; no context is known.
    no_context = assess(tiny(SMALL_GEOMETRY, maxModelLen=None))
    assert no_context.ok
    assert no_context.warnings == (
        "context length unknown: set spec.engine.maxModelLen to get concurrent sequences per replica",
    )
    assert no_context.status().wire() == {
        "weightsBytes": GiB,
        "kvBytesPerToken": 8 * KiB,
        "kvTokensPerReplica": 262_144,
        "gpuMemoryBytes": 8 * GiB,
    }


def test_low_kv_headroom_warns_with_the_share_and_a_tp_only_when_a_larger_one_helps() -> None:
    # Pins the headroom warning's words. Tiny at TP 8: 4 GiB of KV of 48 GiB usable = 8 %, and no
    # TP reaches 25 % (see the first test): no hint. Llama 3.1 70B at TP 2: 1.9 GiB = 1 % of
    # 143.4 GiB; TP 4 leaves 25 %.
    a = assess(tiny(tensorParallelSize=8))
    assert a.ok and a.warnings == ("only 8% of usable memory (4.0 GiB) is left for KV cache",)
    b = assess(
        spec(
            model={"name": "meta-llama/Llama-3.1-70B-Instruct"},
            engine={"tensorParallelSize": 2, "maxModelLen": 4096},
            gpu={"product": "NVIDIA-H100-80GB-HBM3"},
        )
    )
    assert b.ok and b.warnings == (
        "only 1% of usable memory (1.9 GiB) is left for KV cache; tensorParallelSize 4 would leave 25%",
    )
    # Small at TP 1: 2 GiB of 6 = 33 %, no warning.
    assert assess(tiny(SMALL_GEOMETRY)).warnings == ()


def test_a_max_model_len_past_the_models_context_is_refused_unless_the_spec_extends_it() -> None:
    # Pins the context check: SmolLM2-360M's context is 8,192 tokens; 8,192 itself is accepted, 32,768
    # refused with the fix; --rope-scaling or --hf-overrides in extraArgs, or
    # VLLM_ALLOW_LONG_MAX_MODEL_LEN set to "1", turn the refusal into a warning.
    def smol(max_len: int, **engine) -> Assessment:
        return assess(
            spec(
                model={"name": "HuggingFaceTB/SmolLM2-360M-Instruct"},
                engine={"maxModelLen": max_len, **engine},
                gpu={"product": "NVIDIA-L4"},
            )
        )

    assert smol(8192).ok and smol(8192).warnings == ()
    msg = "spec.engine.maxModelLen 32,768 exceeds the 8,192-token context of SmolLM2-360M-Instruct"
    refused = (msg + ": vLLM refuses it; lower maxModelLen, or extend the context with --hf-overrides (rope scaling)",)
    assert smol(32768).errors == refused
    warned = (msg + ": relying on the rope-scaling override or VLLM_ALLOW_LONG_MAX_MODEL_LEN in the spec",)
    for extra in (["--rope-scaling", '{"rope_type": "yarn", "factor": 4.0}'], ['--hf-overrides={"rope_scaling": {}}']):
        a = smol(32768, extraArgs=extra)
        assert a.ok and a.warnings == warned
    assert smol(32768, extraArgs=["--enforce-eager"]).errors == refused
    allow = lambda v: smol(32768, env=[{"name": "VLLM_ALLOW_LONG_MAX_MODEL_LEN", "value": v}])  # noqa: E731
    assert allow("1").ok and allow("1").warnings == warned
    assert allow("0").errors == refused and allow("").errors == refused
    assert smol(32768, env=[{"name": "VLLM_OTHER", "value": "1"}]).errors == refused


# --- shapes, memory and the serving configuration ---------------------------------------------


def test_an_explicit_shape_takes_the_catalogs_context_and_heads_for_a_known_name() -> None:
    # Pins explicit_shape: the given geometry, and the attention heads and context of a named family
    # (Llama 3.1 8B: 32 heads, 131,072 tokens); no name or an unknown one gives neither.
    s = explicit_shape("8B", 32, 8, 128, 8, name="meta-llama/Llama-3.1-8B-Instruct", family="mine")
    assert s == ModelShape(
        parameters=8_000_000_000,
        layers=32,
        kv_heads=8,
        head_dim=128,
        attention_heads=32,
        max_context=131072,
        weight_bits=8,
        family="mine",
    )
    assert explicit_shape(1000, 2, 1, 64, None, name=None, family="f") == ModelShape(
        parameters=1000, layers=2, kv_heads=1, head_dim=64, family="f"
    )
    assert explicit_shape("1K", 2, 1, 64, 16, name="my-org/x", family="x").attention_heads is None


def test_the_shape_comes_from_the_geometry_else_the_catalog_and_is_named_by_the_last_path_part() -> None:
    # Pins resolve_shape's sources and the family name: the last part of the name, a trailing
    # slash dropped.
    g = spec(model={"name": "pvc://models/my-tiny/", "geometry": TINY_GEOMETRY})
    shape, source = resolve_shape(g)
    assert source == "spec.model.geometry" and shape.family == "my-tiny" and shape.parameters == 2**31
    shape, source = resolve_shape(spec(model={"name": "s3://bucket/meta-llama/Llama-3.1-8B-Instruct/"}))
    assert source == "catalog:llama-3.x-8b"
    assert shape == replace(lookup("meta-llama/Llama-3.1-8B-Instruct"), family="Llama-3.1-8B-Instruct")
    assert resolve_shape(spec(model={"name": "my-org/custom"})) == (None, "")
    # A name without a slash is its own family name; a name ending in X keeps it (only "/" is
    # stripped from the end).
    assert resolve_shape(spec(model={"name": "tiny", "geometry": TINY_GEOMETRY}))[0].family == "tiny"
    assert resolve_shape(spec(model={"name": "my-org/tiny-X/", "geometry": TINY_GEOMETRY}))[0].family == "tiny-X"


def test_a_geometry_keeps_its_weight_bits_and_takes_the_context_of_a_catalog_name() -> None:
    # Pins what resolve_shape hands explicit_shape: the geometry's weightBits (8: 2^31 parameters
    # x 8 / 8 = 2 GiB of weights, not the 4 GiB of 16 bit) and the model's name, through which a
    # known family gives the attention heads and context (Llama 3.1 8B: 32 heads, 131,072 tokens).
    shape, _ = resolve_shape(
        spec(model={"name": "meta-llama/Llama-3.1-8B-Instruct", "geometry": {**TINY_GEOMETRY, "weightBits": 8}})
    )
    assert (shape.weight_bits, shape.attention_heads, shape.max_context, shape.family) == (
        8,
        32,
        131072,
        "Llama-3.1-8B-Instruct",
    )
    a = assess(tiny({**TINY_GEOMETRY, "weightBits": 8}))
    assert a.status().weights_bytes == 2 * GiB


def test_kv_headroom_of_exactly_a_quarter_is_enough() -> None:
    # Pins the headroom edge on both sides (assess warns below 25 %, recommended_tp takes 25 %).
    # 805,306,368 parameters x 2 bytes = 1.5 GiB of weights; 6 GiB usable - 3 GiB reserve - 1.5 GiB
    # = 1.5 GiB of KV, exactly 25 % of 6 GiB.
    a = assess(tiny({**TINY_GEOMETRY, "parameters": "805306368"}))
    assert a.capacity.kv_share == 0.25
    assert a.ok and a.warnings == ()
    assert recommended_tp(a.shape, a.config) == 1


def test_gpu_memory_is_the_lowest_known_figure_and_the_product_only_stands_in() -> None:
    # Pins gpu_memory_bytes_for: the lower of the spec and the node label wins whichever it is, and a
    # known product's memory is used only when neither is set (an L4 reports 23,034 MiB).
    s = spec(model={"name": "x/y"}, gpu={"memory": "16Gi", "product": "NVIDIA-L4"})
    assert gpu_memory_bytes_for(s) == (16 * GiB, "spec.gpu.memory")
    assert gpu_memory_bytes_for(s, 20_000) == (16 * GiB, "spec.gpu.memory")
    assert gpu_memory_bytes_for(s, 10_000) == (10_000 * MiB, "node label nvidia.com/gpu.memory")
    product = spec(model={"name": "x/y"}, gpu={"product": "NVIDIA-L4"})
    assert gpu_memory_bytes_for(product) == (23034 * MiB, "known memory of NVIDIA-L4")
    assert gpu_memory_bytes_for(product, 20_000) == (20_000 * MiB, "node label nvidia.com/gpu.memory")
    # assess passes the node label on: it decides the capacity and is named as the source.
    a = assess(tiny(SMALL_GEOMETRY), node_gpu_memory_mib=4096)
    assert a.memory_source == "node label nvidia.com/gpu.memory" and a.config.gpu_memory_bytes == 4 * GiB


def test_the_serving_configuration_carries_every_engine_field() -> None:
    # Pins serving_config: each engine field reaches the capacity model under its own name.
    s = spec(
        model={"name": "x/y"},
        engine={
            "tensorParallelSize": 4,
            "pipelineParallelSize": 2,
            "gpuMemoryUtilization": 0.8,
            "kvCacheDtype": "fp8",
            "dtype": "float16",
            "maxModelLen": 8192,
            "maxNumSeqs": 64,
        },
    )
    assert serving_config(s, 40 * GiB) == ServingConfig(
        gpu_memory_bytes=40 * GiB,
        tensor_parallel=4,
        pipeline_parallel=2,
        gpu_memory_utilization=0.8,
        kv_cache_dtype="fp8",
        dtype="float16",
        max_model_len=8192,
        max_num_seqs=64,
    )
    assert serving_config(s, 40 * GiB).gpus == 8


def test_status_without_a_serving_config_leaves_gpu_memory_unset() -> None:
    # Pins Assessment.status: every capacity figure, and gpuMemoryBytes only with a config; no
    # shape, no figures.
    a = assess(tiny(SMALL_GEOMETRY))
    bare = replace(a, config=None)
    assert bare.status().wire() == {
        "weightsBytes": GiB,
        "kvBytesPerToken": 8 * KiB,
        "kvTokensPerReplica": 262_144,
        "concurrentSequences": 64,
        "contextTokens": 4096,
    }
    assert Assessment(None, "", None).status().wire() == {} and Assessment(None, "", None).ok
    assert not Assessment(None, "", None, errors=("x",)).ok


# --- one replica ------------------------------------------------------------------------------


def _shape(**kw) -> ModelShape:
    # 1 GiB of weights (2^29 x 16 bit), 8 KiB of KV per token in 16 bit.
    return ModelShape(**{"parameters": 2**29, "layers": 8, "kv_heads": 4, "head_dim": 64, **kw})


def test_replica_capacity_counts_pipeline_stages_caps_sequences_and_prefers_max_model_len() -> None:
    # Pins replica_capacity's figures. TP 1 x PP 2 = 2 GPUs of 8 GiB x 0.75 = 12 GiB usable, minus
    # 2 x 5 GiB reserve and 1 GiB of weights: 1 GiB = 131,072 tokens of 8 KiB. maxModelLen 2,048
    # (not the shape's 4,096) = 128 blocks: 8,192 blocks // 128 = 64 sequences, capped at 16.
    shape = _shape(max_context=4096)
    cfg = ServingConfig(
        gpu_memory_bytes=8 * GiB, pipeline_parallel=2, gpu_memory_utilization=0.75, max_model_len=2048, max_num_seqs=16
    )
    cap = replica_capacity(shape, cfg)
    assert (cap.gpus, cap.usable_bytes, cap.reserve_bytes, cap.weights_bytes, cap.kv_free_bytes) == (
        2,
        12 * GiB,
        10 * GiB,
        GiB,
        GiB,
    )
    assert (cap.kv_tokens, cap.context, cap.kv_limited_sequences, cap.concurrent_sequences) == (131_072, 2048, 64, 16)
    assert cap.kv_share == pytest.approx(1 / 12)
    # Without maxModelLen the shape's 4,096 is the context: 8,192 // 256 = 32, capped at 16.
    at_model = replica_capacity(shape, replace(cfg, max_model_len=None))
    assert (at_model.context, at_model.kv_limited_sequences) == (4096, 32)
    # Neither: no context, no sequence figures.
    # TP 8 on 4 KV heads stores 8: a token costs the replica 16 KiB, the model's figure stays 8 KiB.
    wide = replica_capacity(shape, replace(cfg, tensor_parallel=8, pipeline_parallel=1))
    assert (wide.kv_bytes_per_token, wide.kv_bytes_per_token_stored, wide.gpu_memory_bytes) == (
        8 * KiB,
        16 * KiB,
        8 * GiB,
    )
    none = replica_capacity(_shape(), replace(cfg, max_model_len=None))
    assert (none.context, none.concurrent_sequences, none.kv_limited_sequences) == (None, None, None)
    assert none.holds_one_sequence and none.fits


def test_a_replica_holding_exactly_one_full_context_fits() -> None:
    # Pins holds_one_sequence at its edge: KV tokens equal to the context fit, one block fewer does
    # not. 131,072 tokens (as above) at maxModelLen 131,072 and 131,073.
    cfg = ServingConfig(gpu_memory_bytes=8 * GiB, pipeline_parallel=2, gpu_memory_utilization=0.75)
    exact = replica_capacity(_shape(), replace(cfg, max_model_len=131_072))
    assert exact.kv_tokens == 131_072 and exact.holds_one_sequence and exact.fits
    over = replica_capacity(_shape(), replace(cfg, max_model_len=131_073))
    assert not over.holds_one_sequence and over.weights_fit and not over.fits


def test_float32_loads_sixteen_bit_weights_in_32_bits_and_leaves_quantised_ones() -> None:
    # Pins effective_weight_bits: --dtype float32 doubles 16-bit weights (None means 16) and keeps
    # 8-bit ones; other dtypes keep the checkpoint's width.
    assert effective_weight_bits(_shape(), "float32") == 32
    assert effective_weight_bits(_shape(weight_bits=16), "float32") == 32
    assert effective_weight_bits(_shape(weight_bits=8), "float32") == 8
    assert effective_weight_bits(_shape(), "bfloat16") == 16
    assert effective_weight_bits(_shape(weight_bits=4)) == 4
    # The KV cache follows: 4 bytes an element in float32 (16 KiB a token), 2 in float16.
    assert kv_element_bytes("auto", "float16") == 2
    cap = replica_capacity(_shape(), ServingConfig(gpu_memory_bytes=8 * GiB, dtype="float32"))
    assert (cap.weight_bits, cap.weights_bytes, cap.kv_bytes_per_token) == (32, 2 * GiB, 16 * KiB)


def test_tp_options_include_the_current_size_and_follow_both_head_rules() -> None:
    # Pins the TP search: a non-power-of-two current size is tried (6 KV and 12 attention heads at
    # TP 6), sizes that break a head rule are skipped, and None when nothing fits.
    shape = _shape(kv_heads=6, attention_heads=12)
    cfg = ServingConfig(gpu_memory_bytes=80 * GiB, tensor_parallel=6)
    assert smallest_fitting_tp(shape, cfg) == 1
    # 1 GiB of weights, 40 GiB per GPU at 0.9 (36 GiB): TP 1 leaves 32 GiB = 89 % of usable memory.
    assert recommended_tp(shape, replace(cfg, gpu_memory_bytes=40 * GiB)) == 1
    # On 4 GiB GPUs (3.6 GiB usable, 3 GiB reserve at TP 1, 5 GiB a GPU beyond) nothing loads 1 GiB.
    small = replace(cfg, gpu_memory_bytes=4 * GiB)
    assert smallest_fitting_tp(shape, small) is None and recommended_tp(shape, small) is None
    # 12 heads: TP 1, 2, 4 divide them, 8 does not; 6 KV heads: 4 neither divides nor is a multiple
    # of 6. So on GPUs where only TP >= 4 loads, the first fit is the current 6.
    big = _shape(parameters=20 * GiB // 2, kv_heads=6, attention_heads=12)  # 20 GiB of weights
    gpu = replace(cfg, gpu_memory_bytes=10 * GiB)  # 9 GiB usable, 4 GiB left per GPU past TP 1
    assert smallest_fitting_tp(big, gpu) == 6  # TP 2: 18 - 10 = 8 GiB < 20; TP 6: 54 - 30 = 24 GiB
    # A size that breaks the attention rule does not end the search: 36 heads and 12 KV heads at
    # TP 12 allow 1, 2, 4 and 12 (8 does not divide 36). TP 4: 36 - 20 = 16 GiB < 20 of weights;
    # TP 12: 108 - 60 = 48 GiB, 28 GiB left for KV.
    twelve = _shape(parameters=20 * GiB // 2, kv_heads=12, attention_heads=36)
    assert smallest_fitting_tp(twelve, replace(gpu, tensor_parallel=12)) == 12


def test_kv_share_is_zero_without_usable_memory() -> None:
    # Pins kv_share's guard against a division by zero.
    cap = replica_capacity(_shape(), ServingConfig(gpu_memory_bytes=8 * GiB, gpu_memory_utilization=0.0))
    assert cap.usable_bytes == 0 and cap.kv_share == 0.0 and not cap.fits


# --- units and memory terms -------------------------------------------------------------------


def test_quantities_in_every_form() -> None:
    # Pins parse_quantity's numbers, spaces and suffixes, and format_quantity's other units.
    assert parse_quantity(3) == 3.0 and isinstance(parse_quantity(3), float)
    assert parse_quantity(2.5) == 2.5
    assert parse_quantity(" 2Ti ") == 2 * 2**40
    assert parse_quantity("1k") == 1000 and parse_quantity("3M") == 3e6 and parse_quantity("1T") == 1e12
    assert parse_quantity("1P") == 1e15 and parse_quantity("1E") == 1e18
    assert parse_quantity("4Ki") == 4096 and parse_quantity("1Pi") == 2**50 and parse_quantity("1Ei") == 2**60
    with pytest.raises(CapacityError, match=r"^not a Kubernetes quantity: '80 GB'$"):
        parse_quantity("80 GB")
    assert format_quantity(3 * 2**40) == "3Ti"
    assert format_quantity(3 * KiB) == "3Ki"
    assert format_quantity(1025) == "1025"
    assert format_quantity(0) == "0"


def test_parameter_counts_in_every_form() -> None:
    # Pins parse_parameters: an int passes through, spaces are stripped, K and T scale, and the
    # error says how to write one.
    assert parse_parameters(123) == 123
    assert parse_parameters(" 7B ") == 7_000_000_000
    assert parse_parameters("1.5K") == 1500 and parse_parameters("2T") == 2 * 10**12 and parse_parameters("42") == 42
    with pytest.raises(
        CapacityError, match=r"^not a parameter count: '8 billion' \(write e\.g\. 8B, 70\.6B or 135M\)$"
    ):
        parse_parameters("8 billion")


def test_gib_and_the_small_memory_terms() -> None:
    # Pins gib's one decimal, kv_tokens' zero cases, blocks_for's rounding up and
    # concurrent_sequences' block size.
    assert gib(1.5 * GiB) == "1.5 GiB" and gib(0) == "0.0 GiB"
    assert kv_tokens(0, 131072) == 0 and kv_tokens(10 * GiB, 0) == 0
    assert kv_tokens(2 * 1024 * 16 - 1, 1024) == 16  # one block short of two: one block of 16
    assert blocks_for(16) == 1 and blocks_for(17) == 2 and blocks_for(0) == 0
    assert concurrent_sequences(64, 8, block_tokens=8) == 8 and concurrent_sequences(64, 9, block_tokens=8) == 4
    # One byte a token still counts whole blocks: 160 bytes = 10 blocks of 16 = 160 tokens.
    assert kv_tokens(160, 1) == 160
    # Sequence counts are whole numbers (they reach the status and the CLI's JSON), also when the
    # capacity is not a whole number of blocks: 170 tokens = 10 blocks.
    assert type(concurrent_sequences(170, 32)) is int and concurrent_sequences(170, 32) == 5
    assert type(shared_prefix_sequences(170, 32, 16)) is int and shared_prefix_sequences(170, 32, 16) == 9
    assert type(shared_prefix_sequences(170, 32, 32)) is int
    # With blocks of 8 a 24-token call with a 16-token shared prefix keeps 1 block of its own:
    # (80 // 8 - 2) // 1 = 8 (with blocks of 16 for the call it would keep none and take every block).
    assert shared_prefix_sequences(80, 24, 16, block_tokens=8) == 8
    with pytest.raises(CapacityError, match=r"^context must be positive$"):
        concurrent_sequences(160, 0)
    with pytest.raises(CapacityError, match=r"^prefix must be between 0 and the context length$"):
        shared_prefix_sequences(160, 16, 17)


# --- fleet sizing -----------------------------------------------------------------------------


def test_fleet_notes_word_for_word_and_a_prefix_longer_than_the_call() -> None:
    # Pins size_fleet's notes, its cost per task with no tasks, and that a shared prefix longer
    # than one call's context counts as the whole context. A 5,010-token call on a replica of 1,000
    # tokens: none fits.
    one = WorkloadProfile(
        users=1,
        tasks_per_user_per_day=1,
        steps_per_task=1,
        tokens_in_per_call=5000,
        tokens_out_per_call=10,
        step_latency_s=1,
    )
    f = size_fleet(one, _replica(1000))
    assert f.notes == ("one replica's KV cache (1,000 tokens) cannot hold one 5,010-token call",)
    assert (f.sequences_per_replica, f.replicas_for_calls, f.replicas, f.gpus) == (0, None, None, None)
    # No users, no tasks: the cost per task is 0, not a division by zero.
    assert size_fleet(replace(one, users=0)).cost_per_task == 0.0
    # A 9,000-token prefix on a 5,010-token call shares 5,010 // 16 = 313 blocks; the call takes
    # 314, so each keeps 1 of its own: (100,000 // 16 - 313) // 1 = 6,250 - 313 = 5,937.
    assert size_fleet(replace(one, shared_prefix_tokens=9000), _replica(100_000)).sequences_per_replica == 5937


def test_a_replica_that_holds_exactly_one_call_serves_and_the_plan_carries_its_figures() -> None:
    # Pins size_fleet's edge at one sequence and the plan's own figures. A 5,010-token call takes
    # 314 blocks = 5,024 tokens: a replica of exactly 5,024 holds one, and one task a day needs one
    # replica.
    one = WorkloadProfile(
        users=1,
        tasks_per_user_per_day=1,
        steps_per_task=2,
        tokens_in_per_call=5000,
        tokens_out_per_call=10,
        step_latency_s=1,
    )
    f = size_fleet(one, _replica(5024))
    assert (f.sequences_per_replica, f.replicas_for_calls, f.replicas, f.gpus, f.notes) == (1, 1, 1, 1, ())
    assert (f.calls_per_task, f.context_tokens) == (2, 5010)


def test_the_residency_note_word_for_word() -> None:
    # Pins the note's words when residency sets the count. 10,000 tasks a day of one 1 s step with
    # 1,000 s of tools: 10,000 / 86,400 x 8 x 1,001 s = 926.9 tasks warm, x 1,000 tokens = 926,852
    # tokens on replicas of 100,000: 9.27, so 10 replicas, against 1 for the 0.93 calls in flight.
    p = WorkloadProfile(
        users=10_000,
        tasks_per_user_per_day=1,
        steps_per_task=1,
        tokens_in_per_call=1000,
        tokens_out_per_call=0,
        step_latency_s=1,
        tool_latency_s=1000,
    )
    f = size_fleet(p, _replica(100_000))
    assert (f.replicas_for_calls, f.replicas_for_warm_tasks, f.replicas) == (1, 10, 10)
    assert f.notes == (
        "residency, not in-flight calls, sets the replica count: tasks waiting on tools keep their KV warm",
    )


def test_a_smaller_tp_that_fits_is_named_rather_than_no_tp_fitting() -> None:
    # Pins _suggestion when only a smaller TP fits (mutation testing found it saying none does).
    # 1 GiB of weights on 6 GiB GPUs at 0.75, 4.5 GiB usable each: TP 2 has 9 - 2 x 5 (reserve) - 1
    # = -2 GiB for KV; TP 1 has 4.5 - 3 - 1 = 0.5 GiB = 4,096 blocks of 16 x 8 KiB = 65,536 tokens,
    # room for a 4,096-token sequence; TP 4 and up lose more to the reserve (18 - 20 - 1 < 0).
    a = assess(
        spec(
            model={"name": "my-org/small", "geometry": SMALL_GEOMETRY},
            engine={"maxModelLen": 4096, "gpuMemoryUtilization": 0.75, "tensorParallelSize": 2},
            gpu={"memory": "6Gi"},
        )
    )
    assert a.errors == (
        "small does not fit at tensorParallelSize 2 x pipelineParallelSize 1: its weights take 1.0 GiB "
        "(0.54B parameters x 16 bit) but 2 x 6.0 GiB GPU x 0.75 utilization = 9.0 GiB usable, minus 10.0 GiB "
        "working reserve leaves -1.0 GiB; the smallest tensorParallelSize that fits is 1 (0.5 GiB KV, 65,536 tokens)",
    )


def test_vllm_allow_long_max_model_len_counts_only_where_vllm_reads_it_as_on() -> None:
    # Pins the env check to vLLM's own reading (vllm/envs.py: the value, stripped and lower-cased,
    # in ("1", "true")). "false" or "yes" leave vLLM refusing the 32,768-token context of a model
    # of 8,192, so admission must refuse it too; the old check accepted any value but "" and "0".
    def smol(value: str) -> Assessment:
        env = [{"name": "VLLM_ALLOW_LONG_MAX_MODEL_LEN", "value": value}]
        return assess(
            spec(
                model={"name": "HuggingFaceTB/SmolLM2-360M-Instruct"},
                engine={"maxModelLen": 32768, "env": env},
                gpu={"product": "NVIDIA-L4"},
            )
        )

    for on in ("1", "true", " TRUE ", "True"):
        assert smol(on).ok and "relying on the rope-scaling override" in smol(on).warnings[0], on
    for off in ("false", "yes", "0", "", "2"):
        assert not smol(off).ok and "vLLM refuses it" in smol(off).errors[0], off
