"""The capacity model against hand-computed figures."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec

from agentfleet.capacity import (
    CapacityError,
    GiB,
    MiB,
    ReplicaCapacity,
    ServingConfig,
    WorkloadProfile,
    assess,
    calls_per_task,
    concurrent_sequences,
    format_quantity,
    gpu_memory_bytes_for,
    kv_bytes_per_token,
    kv_element_bytes,
    kv_tokens,
    parse_parameters,
    parse_quantity,
    recommended_tp,
    replica_capacity,
    reserve_bytes,
    shared_prefix_sequences,
    size_fleet,
    smallest_fitting_tp,
    stored_kv_heads,
    usable_bytes,
    weights_bytes,
)
from agentfleet.catalog import lookup

H100_MIB = 81559  # nvidia.com/gpu.memory of an H100 80GB HBM3


def spec(**kw) -> ModelReplicaSetSpec:
    return ModelReplicaSetSpec.model_validate(kw)


# --- units -----------------------------------------------------------------------------------


def test_quantities_and_parameter_counts() -> None:
    assert parse_quantity("80Gi") == 80 * GiB
    assert parse_quantity("512Mi") == 512 * MiB
    assert parse_quantity("1.5G") == 1.5e9
    assert parse_quantity("500m") == 0.5
    assert parse_quantity("8") == 8
    with pytest.raises(CapacityError):
        parse_quantity("80 GB")
    assert format_quantity(80 * GiB) == "80Gi"
    assert format_quantity(1536 * MiB) == "1536Mi"
    assert format_quantity(1000) == "1000"
    assert parse_parameters("8B") == 8_000_000_000
    assert parse_parameters("70.6B") == 70_600_000_000
    assert parse_parameters("135M") == 135_000_000
    with pytest.raises(CapacityError):
        parse_parameters("8 billion")


# --- memory arithmetic -----------------------------------------------------------------------


def test_weights_are_parameters_times_bits_over_eight() -> None:
    assert weights_bytes(8_000_000_000, 16) == 16_000_000_000
    assert weights_bytes(70_000_000_000, 8) == 70_000_000_000
    assert weights_bytes(70_000_000_000, 4) == 35_000_000_000


def test_kv_bytes_per_token() -> None:
    # The brief's example: a 13B fp16 model, 40 layers x 40 KV heads x head dim 128 = 800 KiB per token.
    assert kv_bytes_per_token(40, 40, 128, 2) == 800 * 1024
    # Llama 3 8B (32 layers, 8 KV heads): 128 KiB in fp16, 64 KiB in fp8.
    assert kv_bytes_per_token(32, 8, 128, kv_element_bytes("auto")) == 131072
    assert kv_bytes_per_token(32, 8, 128, kv_element_bytes("fp8")) == 65536
    assert kv_element_bytes("fp8_e5m2") == 1
    assert kv_element_bytes("fp8_e4m3", "float32") == 1
    assert kv_element_bytes("auto", "bfloat16") == 2
    assert kv_element_bytes("auto", "float32") == 4


def test_tensor_parallel_beyond_kv_heads_replicates_them() -> None:
    assert stored_kv_heads(8, 4) == 8
    assert stored_kv_heads(8, 16) == 16


def test_free_kv_and_tokens_on_one_80gib_gpu() -> None:
    # 80 GiB x 0.9 = 72 GiB usable; minus 16e9 B of weights and the 3 GiB reserve:
    # 69 x 2^30 - 16e9 = 74,088,185,856 - 16,000,000,000 = 58,088,185,856 B.
    free = usable_bytes(1, 80 * GiB, 0.9) - 16_000_000_000 - reserve_bytes(1)
    assert reserve_bytes(1) == 3 * GiB
    assert free == 58_088_185_856
    # Blocks of 16 tokens x 128 KiB = 2,097,152 B: 27,698 whole blocks = 443,168 tokens.
    assert kv_tokens(free, 131072) == 443_168
    assert kv_tokens(-1, 131072) == 0
    # At 8K context a sequence takes 512 blocks: 27,698 // 512 = 54, capped by --max-num-seqs.
    assert concurrent_sequences(443_168, 8192) == 54
    assert concurrent_sequences(443_168, 8192, max_num_seqs=32) == 32
    # A partial block still costs a whole one: 8,193 tokens take 513 blocks.
    assert concurrent_sequences(443_168, 8193) == 27698 // 513


def test_reserve_grows_once_a_replica_spans_gpus() -> None:
    assert reserve_bytes(2) == 2 * 5 * GiB
    assert reserve_bytes(8) == 8 * 5 * GiB


def test_shared_prefix_is_stored_once() -> None:
    # 1,000 blocks; 1,600-token sequences (100 blocks) sharing a 1,200-token prompt (75 blocks):
    # alone 1000 // 100 = 10 sequences; shared (1000 - 75) // 25 = 37, a 3.7x gain.
    assert concurrent_sequences(16_000, 1600) == 10
    assert shared_prefix_sequences(16_000, 1600, 1200) == 37
    # Only full blocks are shared: a 1,207-token prefix shares the same 75 blocks.
    assert shared_prefix_sequences(16_000, 1600, 1207) == 37
    # No prefix: nothing is shared, the same count as alone.
    assert shared_prefix_sequences(16_000, 1600, 0) == concurrent_sequences(16_000, 1600)
    with pytest.raises(CapacityError):
        shared_prefix_sequences(16_000, 1600, 1601)


# --- fit and tensor-parallel suggestions ------------------------------------------------------


def _cfg(tp: int = 1, max_len: int | None = 4096, **kw) -> ServingConfig:
    return ServingConfig(gpu_memory_bytes=H100_MIB * MiB, tensor_parallel=tp, max_model_len=max_len, **kw)


def test_70b_fp16_needs_tp2_and_recommends_tp4() -> None:
    shape = lookup("meta-llama/Llama-3.1-70B-Instruct")
    assert shape is not None
    one = replica_capacity(shape, _cfg(1))
    assert one.weights_bytes == 141_107_412_992  # 70.55B x 2 bytes
    assert not one.weights_fit
    assert smallest_fitting_tp(shape, _cfg(1)) == 2
    assert recommended_tp(shape, _cfg(1)) == 4
    # At its full 128K context one sequence needs 40 GiB of KV: TP 2's few GiB do not hold it.
    assert smallest_fitting_tp(shape, _cfg(1, max_len=None)) == 4


def test_refusal_states_the_numbers_and_the_smallest_tp() -> None:
    a = assess(
        spec(
            model={"name": "meta-llama/Llama-3.1-70B-Instruct"},
            engine={"maxModelLen": 4096},
            gpu={"product": "NVIDIA-H100-80GB-HBM3"},
        )
    )
    assert not a.ok
    (msg,) = a.errors
    assert "weights take 131.4 GiB (70.55B parameters x 16 bit)" in msg
    assert "1 x 79.6 GiB GPU x 0.90 utilization = 71.7 GiB usable" in msg
    assert "smallest tensorParallelSize that fits is 2" in msg
    assert "4 is recommended for KV headroom" in msg


def test_context_longer_than_the_kv_cache_is_refused() -> None:
    a = assess(
        spec(
            model={"name": "meta-llama/Llama-3.1-70B-Instruct"},
            engine={"tensorParallelSize": 2},
            gpu={"product": "NVIDIA-H100-80GB-HBM3"},
        )
    )
    (msg,) = a.errors
    assert "fewer than one sequence of maxModelLen 131,072" in msg
    assert "lower spec.engine.maxModelLen" in msg and "smallest tensorParallelSize that fits is 4" in msg


def test_tensor_parallel_must_divide_heads() -> None:
    # Qwen2.5-7B: 28 attention heads, 4 KV heads.
    a = assess(
        spec(model={"name": "Qwen/Qwen2.5-7B-Instruct"}, engine={"tensorParallelSize": 8}, gpu={"memory": "80Gi"})
    )
    assert any("does not divide the 28 attention heads" in e for e in a.errors)
    a = assess(
        spec(model={"name": "Qwen/Qwen2.5-7B-Instruct"}, engine={"tensorParallelSize": 3}, gpu={"memory": "80Gi"})
    )
    assert any("neither divides nor is a multiple of the 4 KV heads" in e for e in a.errors)


def test_status_figures_for_8b_fp8_on_h100() -> None:
    a = assess(
        spec(
            model={"name": "meta-llama/Llama-3.1-8B-Instruct"},
            engine={"maxModelLen": 32768, "kvCacheDtype": "fp8"},
            gpu={"product": "NVIDIA-H100-80GB-HBM3"},
        )
    )
    assert a.ok and a.shape_source == "catalog:llama-3.x-8b"
    st = a.status()
    # 8,030,261,248 params x 2 B.
    assert st.weights_bytes == 16_060_522_496
    assert st.kv_bytes_per_token == 65536
    # 81,559 MiB x 0.9 = 76,968,728,985 B; minus weights and 3 GiB = 57,686,981,017 B;
    # // (16 x 64 KiB) = 55,014 blocks = 880,224 tokens; 55,014 // 2,048 blocks per 32K sequence = 26.
    assert st.kv_tokens_per_replica == 880_224
    assert st.concurrent_sequences == 26
    assert st.wire() == {
        "weightsBytes": 16060522496,
        "kvBytesPerToken": 65536,
        "kvTokensPerReplica": 880224,
        "concurrentSequences": 26,
        "contextTokens": 32768,
        "gpuMemoryBytes": 85520809984,
    }


def test_geometry_in_the_spec_wins_and_unknown_models_warn() -> None:
    a = assess(
        spec(
            model={
                "name": "my-org/custom",
                "geometry": {"parameters": "135M", "layers": 30, "kvHeads": 3, "headDim": 64},
            },
            engine={"maxModelLen": 8192},
            gpu={"memory": "24Gi"},
        )
    )
    assert a.ok and a.shape_source == "spec.model.geometry"
    assert a.status().weights_bytes == 270_000_000
    assert a.status().kv_bytes_per_token == 2 * 30 * 3 * 64 * 2
    unknown = assess(spec(model={"name": "my-org/custom"}))
    assert unknown.ok and unknown.capacity is None and "not a known family" in unknown.warnings[0]
    assert unknown.status().wire() == {}


def test_unknown_gpu_memory_still_reports_weights() -> None:
    a = assess(spec(model={"name": "HuggingFaceTB/SmolLM2-135M-Instruct"}))
    assert a.ok and a.capacity is None and "GPU memory unknown" in a.warnings[0]
    assert a.status().weights_bytes == 134_515_008 * 2


def test_max_model_len_beyond_the_model_is_refused() -> None:
    a = assess(
        spec(
            model={"name": "HuggingFaceTB/SmolLM2-360M-Instruct"},
            engine={"maxModelLen": 32768},
            gpu={"product": "NVIDIA-L4"},
        )
    )
    assert any("exceeds the 8,192-token context" in e for e in a.errors)
    yarn = spec(
        model={"name": "Qwen/Qwen2.5-7B-Instruct"},
        engine={
            "maxModelLen": 131072,
            "extraArgs": ['--hf-overrides={"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}'],
        },
        gpu={"product": "NVIDIA-H100-80GB-HBM3"},
    )
    a = assess(yarn)
    assert a.ok and any("relying on the rope-scaling override" in w for w in a.warnings)


def test_gpu_memory_takes_the_lower_of_spec_and_node_label() -> None:
    s = spec(model={"name": "x/y"}, gpu={"memory": "80Gi"})
    assert gpu_memory_bytes_for(s) == (80 * GiB, "spec.gpu.memory")
    assert gpu_memory_bytes_for(s, H100_MIB) == (H100_MIB * MiB, "node label nvidia.com/gpu.memory")
    assert gpu_memory_bytes_for(spec(model={"name": "x/y"}, gpu={"product": "NVIDIA-L4"}))[0] == 23034 * MiB
    assert gpu_memory_bytes_for(spec(model={"name": "x/y"})) == (None, "")


def test_low_kv_headroom_warns() -> None:
    a = assess(
        spec(
            model={"name": "meta-llama/Llama-3.1-70B-Instruct"},
            engine={"tensorParallelSize": 2, "maxModelLen": 4096},
            gpu={"product": "NVIDIA-H100-80GB-HBM3"},
        )
    )
    assert a.ok
    assert any("left for KV cache; tensorParallelSize 4 would leave 25%" in w for w in a.warnings)


# --- fleet sizing ----------------------------------------------------------------------------


def _replica(kv_tokens: int, gpus: int = 1) -> ReplicaCapacity:
    return ReplicaCapacity(
        gpus=gpus,
        gpu_memory_bytes=0,
        usable_bytes=0,
        weight_bits=16,
        weights_bytes=0,
        reserve_bytes=0,
        kv_free_bytes=0,
        kv_bytes_per_token=0,
        kv_bytes_per_token_stored=0,
        kv_tokens=kv_tokens,
        context=None,
        concurrent_sequences=None,
        kv_limited_sequences=None,
    )


def test_calls_per_task() -> None:
    # The brief's example: s = 12, f = 0.3, g = 3 gives about 23 calls.
    assert calls_per_task(12, 0.3, 3) == pytest.approx(22.8)
    assert calls_per_task(10) == 10


# 5,000 tasks a day of 12 steps, 30 % branching into 3 sub-agents, 20K-token prompts.
AGENT_WORKLOAD = WorkloadProfile(
    users=1000,
    tasks_per_user_per_day=5,
    steps_per_task=12,
    branch_fraction=0.3,
    fan_out=3,
    tokens_in_per_call=20_000,
    tokens_out_per_call=500,
    price_in_per_mtok=0.5,
    price_out_per_mtok=1.5,
    peak_factor=8,
    step_latency_s=3.0,
    tool_latency_s=2.0,
)


def test_fleet_for_a_workload() -> None:
    f = size_fleet(AGENT_WORKLOAD, _replica(440_112))
    assert f.tasks_per_day == 5000
    assert f.calls_per_day == pytest.approx(114_000)
    assert f.tokens_in_per_day == pytest.approx(2.28e9)
    assert f.tokens_out_per_day == pytest.approx(57e6)
    # 2,280 Mtok x 0.5 + 57 Mtok x 1.5 = 1,140 + 85.5.
    assert f.cost_per_day == pytest.approx(1225.5)
    assert f.cost_per_task == pytest.approx(1225.5 / 5000)
    assert f.mean_qps == pytest.approx(114_000 / 86_400)
    assert f.peak_qps == pytest.approx(8 * 114_000 / 86_400)
    # Little's law: 10.556 calls/s x 3 s.
    assert f.concurrent_calls == pytest.approx(8 * 114_000 / 86_400 * 3)
    # 440,112 tokens = 27,507 blocks; a 20,500-token call takes 1,282: 21 calls per replica.
    assert f.sequences_per_replica == 21
    assert f.replicas_for_calls == math.ceil(31.667 / 21) == 2
    # Tasks live 12 x (3 + 2) s; 5000/86400 x 8 tasks/s x 60 s = 27.8 tasks, each 20,000 tokens warm.
    assert f.warm_tasks == pytest.approx(5000 / 86400 * 8 * 60)
    assert f.replicas_for_warm_tasks == math.ceil(27.78 * 20_000 / 440_112) == 2
    assert f.replicas == 2 and f.gpus == 2
    assert f.p_task_sees_p99_call == pytest.approx(1 - 0.99**22.8)


def test_fleet_with_shared_prefix_needs_fewer_replicas() -> None:
    base = dict(
        users=5000,
        tasks_per_user_per_day=10,
        steps_per_task=20,
        tokens_in_per_call=16_000,
        tokens_out_per_call=300,
        step_latency_s=2.0,
    )
    plain = size_fleet(WorkloadProfile(**base), _replica(400_000))
    shared = size_fleet(WorkloadProfile(**base, shared_prefix_tokens=12_000), _replica(400_000))
    assert shared.sequences_per_replica > 3 * plain.sequences_per_replica
    assert shared.replicas_for_calls < plain.replicas_for_calls


def test_fleet_without_a_replica_shape_reports_demand_only() -> None:
    f = size_fleet(
        WorkloadProfile(
            users=10,
            tasks_per_user_per_day=1,
            steps_per_task=20,
            tokens_in_per_call=100,
            tokens_out_per_call=10,
            step_latency_s=1,
        )
    )
    assert f.replicas is None and f.calls_per_day == 200
    # 1 - 0.99^20: 18% of tasks meet at least one p99 call.
    assert f.p_task_sees_p99_call == pytest.approx(0.182, abs=1e-3)
    tiny = size_fleet(
        WorkloadProfile(
            users=1,
            tasks_per_user_per_day=1,
            steps_per_task=1,
            tokens_in_per_call=5000,
            tokens_out_per_call=10,
            step_latency_s=1,
        ),
        _replica(1000),
    )
    assert tiny.replicas is None and "cannot hold one" in tiny.notes[0]


def test_residency_sets_the_replica_count_when_tools_are_slow() -> None:
    # Pins that size_fleet takes the larger of the in-flight and the residency counts. The
    # workload of test_fleet_for_a_workload with 30 s tools: in-flight calls still need 2
    # replicas, but tasks live 12 x (3 + 30) = 396 s, so 5000/86400 x 8 x 396 = 183.3 tasks are
    # mid-flight, each keeping 20,000 tokens of KV warm: ceil(183.3 x 20,000 / 440,112) = 9.
    f = size_fleet(replace(AGENT_WORKLOAD, tool_latency_s=30.0), _replica(440_112))
    assert f.replicas_for_calls == 2
    assert f.warm_tasks == pytest.approx(5000 / 86400 * 8 * 396)
    assert f.replicas_for_warm_tasks == 9
    assert f.replicas == 9 and f.gpus == 9
    assert any("residency" in n for n in f.notes)


def test_shared_prefix_edges_and_the_sequence_cap() -> None:
    # Pins the edges of shared_prefix_sequences that mutation testing found unchecked: the cap
    # applies with a shared prefix too; a prompt that is all prefix (no own blocks) is capped
    # only by --max-num-seqs or by the blocks; a prefix exactly filling the cache still counts.
    assert shared_prefix_sequences(16_000, 1600, 1200, max_num_seqs=20) == 20  # 37 uncapped
    assert shared_prefix_sequences(16_000, 1600, 1600) == 1000  # own blocks 0: every block, 16,000 / 16
    assert shared_prefix_sequences(16_000, 1600, 1600, max_num_seqs=64) == 64
    assert shared_prefix_sequences(1600, 1600, 1600) == 100  # 100 blocks, all shared: not "no room"
    assert shared_prefix_sequences(800, 1600, 1600) == 0  # the prefix alone does not fit
    # One-token contexts are valid; zero is refused with the reason.
    assert concurrent_sequences(160, 1) == 10
    with pytest.raises(CapacityError, match="context must be positive"):
        concurrent_sequences(160, 0)
    with pytest.raises(CapacityError, match="prefix must be between 0 and the context length"):
        shared_prefix_sequences(160, 16, 17)


def test_fleet_sizing_edges() -> None:
    # Pins size_fleet's smaller terms: the --max-num-seqs cap reaches the sizing on both paths,
    # a light load still needs one replica (not two), GPUs are replicas x GPUs per replica, cost
    # is per million tokens exactly, and the residency note appears only when residency wins.
    light = WorkloadProfile(
        users=1,
        tasks_per_user_per_day=10,
        steps_per_task=10,
        tokens_in_per_call=1000,
        tokens_out_per_call=100,
        step_latency_s=1.0,
    )
    f = size_fleet(light, _replica(400_000, gpus=4), max_num_seqs=8)
    assert f.sequences_per_replica == 8
    assert (f.replicas_for_calls, f.replicas_for_warm_tasks, f.replicas, f.gpus) == (1, 1, 1, 4)
    assert not f.notes
    shared = size_fleet(replace(light, shared_prefix_tokens=800), _replica(400_000), max_num_seqs=8)
    assert shared.sequences_per_replica == 8
    # 100 calls x 1,000,000 tokens in at 1 per million, 100 x 0 out: exactly 100.
    priced = size_fleet(
        replace(
            light, tokens_in_per_call=1_000_000, tokens_out_per_call=0, price_in_per_mtok=1.0, price_out_per_mtok=3.0
        )
    )
    assert priced.cost_per_day == pytest.approx(100.0, rel=1e-12)
    out = size_fleet(
        replace(
            light, tokens_in_per_call=0, tokens_out_per_call=1_000_000, price_in_per_mtok=3.0, price_out_per_mtok=1.0
        )
    )
    assert out.cost_per_day == pytest.approx(100.0, rel=1e-12)
