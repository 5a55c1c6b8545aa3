"""Configuration of a simulated replica: engine shape, timing model, faults.

Default figures model one Llama-3-70B-class replica, BF16, tensor-parallel 4 on H100-80GB SXM,
served by vLLM's V1 engine. Each default says where it comes from:

- ``prefill_tokens_per_s = 11_000``: compute-bound prefill. 2 x 70.6e9 FLOP per token = 141 GFLOP;
  4 x 989 TFLOPS dense BF16 (H100 SXM datasheet) at ~40 % MFU = 1.58 PFLOP/s -> ~11,200 tokens/s;
  the figure issue 7 quotes for a 70B TP-4 replica on H100-class GPUs.
- ``decode_base_s = 0.020``: one decode step must read every weight once: 141 GB / 4 GPUs /
  3.35 TB/s HBM3 = 10.5 ms at the roofline; with ~55 % achieved bandwidth, two all-reduces per layer
  over NVLink and launch overhead, ~20 ms, in line with the 15-30 ms TPOT that public vLLM
  benchmarks report for 70B on 4 x H100 at low batch.
- ``decode_per_seq_s = 0.0001``: the per-sequence compute of one token (141 GFLOP / 1.58 PFLOP/s
  = 0.09 ms) plus sampling, so step time grows linearly with batch size.
- ``kv_read_s_per_token = 2.5e-8``: attention reads each context token's KV once per step:
  320 KiB/token (2 x 80 layers x 8 KV heads x 128 dims x 2 bytes) / 4 GPUs / 3.35 TB/s = 24 ns.
- ``kv_cache_tokens = 450_000``: 4 x 80 GiB x 0.9 utilisation - 131 GiB weights - ~16 GiB
  activations/graphs = ~141 GiB free; at 320 KiB/token that is ~460K tokens.
- ``block_size = 16``, ``max_num_batched_tokens = 8192``, ``max_num_seqs = 1024``: vLLM V1
  defaults for the OpenAI server on >= 70 GiB GPUs other than A100
  (``EngineArgs.get_batch_defaults`` in vllm/engine/arg_utils.py); prefix caching and chunked
  prefill are on by default in V1.
- ``output_tokens_median = 150``: agent steps mostly emit short tool calls and summaries; the
  length is log-normal (sigma 0.7) and capped by the request's max_tokens, like a model that stops
  on its own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .metrics_spec import Flavor
from .quirks import Quirks


@dataclass
class EngineConfig:
    """The pure engine's parameters; see the module doc for the sources of the defaults."""

    model: str = "llama-70b"
    served_name: str = "llama-70b"
    max_model_len: int = 65536
    block_size: int = 16
    kv_cache_tokens: int = 450_000
    max_num_seqs: int = 1024
    max_num_batched_tokens: int = 8192
    enable_prefix_caching: bool = True
    prefill_tokens_per_s: float = 11_000.0
    decode_base_s: float = 0.020
    decode_per_seq_s: float = 0.0001
    kv_read_s_per_token: float = 2.5e-8
    output_tokens_median: float = 150.0
    output_tokens_sigma: float = 0.7
    # "natural": log-normal length capped by max_tokens (finish_reason stop or length);
    # "max_tokens": always generate max_tokens (like ignore_eos), for exact tests.
    output_length_mode: str = "natural"
    seed: int = 0
    # LoRA (adapters.py): adapters in GPU memory at once (vLLM's --max-loras; 0: LoRA off), and
    # the seconds moving one in takes (its weights from host memory: tens of MB per adapter).
    max_loras: int = 0
    lora_swap_s: float = 0.5

    @property
    def num_blocks(self) -> int:
        return self.kv_cache_tokens // self.block_size

    def validate(self) -> None:
        if self.block_size <= 0 or self.max_num_seqs <= 0 or self.max_num_batched_tokens <= 0:
            raise ValueError("block_size, max_num_seqs and max_num_batched_tokens must be positive")
        if self.num_blocks * self.block_size < self.max_model_len:
            # vLLM refuses to start in this case too: one max-length request must fit.
            raise ValueError(
                f"kv_cache_tokens ({self.kv_cache_tokens}) must hold at least max_model_len "
                f"({self.max_model_len}) tokens"
            )
        if self.prefill_tokens_per_s <= 0:
            raise ValueError("prefill_tokens_per_s must be positive")
        if self.output_length_mode not in ("natural", "max_tokens"):
            raise ValueError("output_length_mode must be 'natural' or 'max_tokens'")


DRAWS = ("replica", "call")


@dataclass
class FaultConfig:
    """Per-replica fault injection; every field can be changed at run time (POST /admin/config)."""

    error_rate: float = 0.0  # share of completion calls answered with HTTP 500
    added_latency_s: float = 0.0  # added before the first byte of every completion call
    slow_fraction: float = 0.0  # share of calls made slow_factor times slower
    slow_factor: float = 10.0
    # Correlated slowness (episodes.py): this share of the replica's time is spent in episodes
    # (mean length slow_episode_seconds) in which every call it starts is slow_factor times slower.
    slow_episode_fraction: float = 0.0
    slow_episode_seconds: float = 20.0
    hang: bool = False  # completion calls never answer (health stays green: the nasty case)
    health_fail: bool = False  # /health answers 503
    draining: bool = False  # refuse new calls with 503, finish running ones, /health 503
    # Setting it stalls the engine that many seconds from now: no step runs, the queue grows
    # (a hung GPU, a long GC pause); calls answer late, nothing fails.
    stall_seconds: float = 0.0
    seed: int = 0
    # Where a call's error and slow draws come from: "replica", one generator per replica drawn in
    # the order calls reach it; "call", a generator per attempt keyed by the fleet's seed, the
    # prompt and the attempt number (faultdraws.py), so that policies that route or time calls
    # differently meet the same faults on the same calls.
    draws: str = "replica"

    def update(self, changes: dict[str, Any]) -> FaultConfig:
        known = {f.name for f in dataclasses.fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        typed: dict[str, Any] = {}
        for name, value in changes.items():
            kind = type(getattr(self, name))  # JSON gives ints for floats; coerce to the field's type
            if kind is bool and not isinstance(value, bool):
                raise ValueError(f"{name} must be a boolean")
            typed[name] = kind(value)
        merged = dataclasses.replace(self, **typed)
        for name in ("error_rate", "slow_fraction", "slow_episode_fraction"):
            value = getattr(merged, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")
        if merged.slow_factor < 1.0 or merged.added_latency_s < 0.0 or merged.stall_seconds < 0.0:
            raise ValueError("slow_factor must be >= 1, added_latency_s and stall_seconds >= 0")
        if merged.slow_episode_seconds <= 0.0:
            raise ValueError("slow_episode_seconds must be positive")
        if merged.draws not in DRAWS:
            raise ValueError(f"draws must be one of {', '.join(DRAWS)}")
        return merged


@dataclass
class ReplicaConfig:
    """A replica = engine + startup behaviour + metric flavour + faults."""

    engine: EngineConfig = field(default_factory=EngineConfig)
    faults: FaultConfig = field(default_factory=FaultConfig)
    startup_seconds: float = 0.0  # /health fails this long, like a model still loading
    metrics_flavor: Flavor = Flavor.CURRENT
    quirks: Quirks = field(default_factory=Quirks)  # how this engine differs from vLLM (quirks.py)


@dataclass
class FleetConfig:
    replicas: int = 1
    base_port: int = 0  # 0: every replica gets a free port
    host: str = "127.0.0.1"
    replica: ReplicaConfig = field(default_factory=ReplicaConfig)
    # index -> fault overrides for that replica only
    replica_faults: dict[int, dict[str, Any]] = field(default_factory=dict)

    def replica_config(self, index: int) -> ReplicaConfig:
        base = self.replica
        # Same engine seed everywhere: a prompt gets the same answer on every replica (like greedy
        # decoding of one model), so routing policies compare on equal work. Fault draws differ
        # per replica, so an error rate does not hit the same call number everywhere.
        faults = dataclasses.replace(base.faults, seed=base.faults.seed + index)
        if index in self.replica_faults:
            faults = faults.update(self.replica_faults[index])
        return dataclasses.replace(base, faults=faults)


def _pick(cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"unknown keys in {where}: {sorted(unknown)}")
    return dict(data)


def fleet_config_from_dict(data: dict[str, Any]) -> FleetConfig:
    """YAML shape: replicas, base_port, startup_seconds, metrics_flavor, engine: {...},
    faults: {...}, quirks: {...}, replica_faults: {index: {...}}."""
    data = dict(data)
    engine = EngineConfig(**_pick(EngineConfig, data.pop("engine", {}) or {}, "engine"))
    faults = FaultConfig(**_pick(FaultConfig, data.pop("faults", {}) or {}, "faults"))
    replica = ReplicaConfig(
        engine=engine,
        faults=faults,
        startup_seconds=float(data.pop("startup_seconds", 0.0)),
        metrics_flavor=Flavor(data.pop("metrics_flavor", Flavor.CURRENT.value)),
        quirks=Quirks.from_dict(data.pop("quirks", None)),
    )
    per_replica = {int(k): dict(v) for k, v in (data.pop("replica_faults", {}) or {}).items()}
    top = _pick(FleetConfig, data, "fleet config")
    return FleetConfig(replica=replica, replica_faults=per_replica, **top)


def load_fleet_config(path: str | Path) -> FleetConfig:
    return fleet_config_from_dict(yaml.safe_load(Path(path).read_text()) or {})
