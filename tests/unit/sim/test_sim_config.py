"""Fleet configuration from YAML and CLI flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentfleet_sim import Flavor, fleet_config, fleet_config_from_dict
from agentfleet_sim.__main__ import build_config, parse_args


def test_yaml_shape_and_per_replica_overrides(tmp_path: Path) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_text(
        """
replicas: 3
base_port: 18000
startup_seconds: 5
metrics_flavor: legacy
engine: {model: llama-8b, served_name: llama-8b, kv_cache_tokens: 100000, max_num_seqs: 64}
faults: {added_latency_s: 0.1}
replica_faults:
  2: {slow_fraction: 0.01, slow_factor: 10}
"""
    )
    cfg = build_config(parse_args(["--config", str(path), "--prefill-tps", "20000", "--replicas", "4"]))
    assert cfg.replicas == 4 and cfg.base_port == 18000
    assert cfg.replica.metrics_flavor is Flavor.LEGACY and cfg.replica.startup_seconds == 5
    engine = cfg.replica.engine
    assert (engine.served_name, engine.kv_cache_tokens, engine.max_num_seqs, engine.prefill_tokens_per_s) == (
        "llama-8b",
        100000,
        64,
        20000,
    )
    r2, r1 = cfg.replica_config(2), cfg.replica_config(1)
    assert r2.faults.slow_fraction == 0.01 and r1.faults.slow_fraction == 0.0
    assert r2.faults.added_latency_s == 0.1
    assert r1.engine.seed == r2.engine.seed and r1.faults.seed != r2.faults.seed  # same answers, own fault draws


def test_cli_flags_alone() -> None:
    cfg = build_config(
        parse_args(
            [
                "--replicas",
                "2",
                "--base-port",
                "0",
                "--model",
                "llama-8b",
                "--kv-tokens",
                "70000",
                "--startup-seconds",
                "3",
            ]
        )
    )
    assert cfg.replicas == 2 and cfg.replica.engine.served_name == "llama-8b"
    assert cfg.replica.engine.kv_cache_tokens == 70000 and cfg.replica.startup_seconds == 3


def test_bad_config_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown keys in engine"):
        fleet_config_from_dict({"engine": {"kv_tokens": 5}})
    with pytest.raises(ValueError, match="kv_cache_tokens"):
        build_config(parse_args(["--kv-tokens", "1000"]))
    with pytest.raises(ValueError, match="unknown fault"):
        fleet_config(faults={"explode": True})
