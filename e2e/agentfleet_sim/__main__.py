"""CLI: ``python -m agentfleet_sim --replicas 4 --base-port 18000 --model llama-8b``.

Prints one line per replica endpoint, then serves until SIGINT/SIGTERM. Flags override the
``--config`` YAML file (see config.fleet_config_from_dict for its shape).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import signal
import sys
from collections.abc import Sequence

from .config import FleetConfig, fleet_config_from_dict, load_fleet_config
from .fleet import serve_fleet
from .metrics_spec import Flavor
from .quirks import BEHAVIOURS

_ENGINE_FLAGS = {
    "model": str,
    "served_name": str,
    "kv_tokens": int,
    "max_num_seqs": int,
    "max_num_batched_tokens": int,
    "max_model_len": int,
    "prefill_tps": float,
    "decode_base_s": float,
    "decode_per_seq_s": float,
    "output_tokens_median": float,
    "seed": int,
}
_ENGINE_FIELD = {"kv_tokens": "kv_cache_tokens", "prefill_tps": "prefill_tokens_per_s"}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m agentfleet_sim", description="Simulated vLLM replicas on 127.0.0.1.")
    p.add_argument("--config", help="YAML fleet config; flags override it")
    p.add_argument("--replicas", type=int)
    p.add_argument("--base-port", type=int, help="replica i listens on base-port + i (0: free ports)")
    p.add_argument("--startup-seconds", type=float, help="/health fails this long after start")
    p.add_argument("--metrics-flavor", choices=[f.value for f in Flavor], help="legacy: pre-0.9 vLLM metric names")
    p.add_argument("--behave-as", choices=sorted(BEHAVIOURS), help="quirks.py's switches for this engine")
    for flag, kind in _ENGINE_FLAGS.items():
        p.add_argument("--" + flag.replace("_", "-"), type=kind)
    p.add_argument("--error-rate", type=float)
    p.add_argument("--slow-fraction", type=float)
    p.add_argument("--slow-factor", type=float)
    p.add_argument("--added-latency-s", type=float)
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> FleetConfig:
    cfg = load_fleet_config(args.config) if args.config else fleet_config_from_dict({})
    top: dict[str, object] = {}
    if args.replicas is not None:
        top["replicas"] = args.replicas
    if args.base_port is not None:
        top["base_port"] = args.base_port
    engine_changes = {}
    for flag in _ENGINE_FLAGS:
        value = getattr(args, flag)
        if value is not None:
            engine_changes[_ENGINE_FIELD.get(flag, flag)] = value
    if "model" in engine_changes and "served_name" not in engine_changes and not args.config:
        engine_changes["served_name"] = engine_changes["model"]
    engine = dataclasses.replace(cfg.replica.engine, **engine_changes)
    engine.validate()
    fault_changes = {
        k: getattr(args, k)
        for k in ("error_rate", "slow_fraction", "slow_factor", "added_latency_s")
        if getattr(args, k) is not None
    }
    replica = dataclasses.replace(cfg.replica, engine=engine, faults=cfg.replica.faults.update(fault_changes))
    if args.startup_seconds is not None:
        replica = dataclasses.replace(replica, startup_seconds=args.startup_seconds)
    if args.metrics_flavor is not None:
        replica = dataclasses.replace(replica, metrics_flavor=Flavor(args.metrics_flavor))
    if args.behave_as is not None:
        replica = dataclasses.replace(replica, quirks=BEHAVIOURS[args.behave_as])
    return dataclasses.replace(cfg, replica=replica, **top)  # type: ignore[arg-type]


async def _serve(config: FleetConfig) -> None:
    fleet = await serve_fleet(config)
    engine = config.replica.engine
    print(
        f"agentfleet-sim: {len(fleet.handles)} replica(s) of {engine.model} served as {engine.served_name!r}",
        flush=True,
    )
    for handle in fleet.handles:
        print(
            f"{handle.name} {handle.url}  (OpenAI base_url {handle.base_url}, metrics {handle.url}/metrics)", flush=True
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await fleet.stop()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = build_config(parse_args(argv))
    except (OSError, ValueError) as exc:
        print(f"agentfleet-sim: {exc}", file=sys.stderr)
        return 2
    asyncio.run(_serve(config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
