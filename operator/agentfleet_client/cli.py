"""`agentfleet` command line: size a fleet for a workload, or check a ModelReplicaSet's capacity.

    agentfleet plan --users 2000 --tasks-per-user 4 --steps 12 --branch-fraction 0.3 --fan-out 3 \\
        --tokens-in 24000 --tokens-out 350 --price-in 0.10 --price-out 0.40 --peak-factor 8 \\
        --step-latency 2.5 --model meta-llama/Llama-3.1-8B-Instruct --gpu NVIDIA-H100-80GB-HBM3
    agentfleet capacity examples/modelreplicaset-multinode.yaml [--gpu-memory 80Gi] [--json]

All figures come from agentfleet.capacity; this module only parses arguments and prints. It reads
the file it is given and nothing else (no cluster access).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any, TextIO

import pydantic
import yaml
from agentfleet_contract.modelreplicaset import ModelReplicaSet

from agentfleet.capacity import (
    Assessment,
    CapacityError,
    FleetPlan,
    MiB,
    ReplicaCapacity,
    ServingConfig,
    WorkloadProfile,
    assess,
    explicit_shape,
    fit_problems,
    gib,
    parse_quantity,
    replica_capacity,
    size_fleet,
)
from agentfleet.catalog import ModelShape, gpu_memory_mib, lookup

Row = tuple[str, str]


def _num(x: float, digits: int = 0) -> str:
    if isinstance(x, float) and (math.isinf(x) or math.isnan(x)):
        return str(x)
    return f"{x:,.{digits}f}"


def _table(title: str, rows: Sequence[Row], out: TextIO) -> None:
    width = max((len(k) for k, _ in rows), default=0)
    out.write(f"{title}\n")
    for k, v in rows:
        out.write(f"  {k.ljust(width)}  {v}\n")


# --- plan ------------------------------------------------------------------------------------


def _plan_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plan",
        help="size a fleet from an agent workload profile",
        description="Size a model fleet from an agent workload profile.",
    )
    w = p.add_argument_group("workload")
    w.add_argument("--users", type=float, required=True, help="active users")
    w.add_argument("--tasks-per-user", type=float, required=True, help="tasks per user per day")
    w.add_argument("--steps", type=float, required=True, help="sequential steps (model calls) per task")
    w.add_argument("--branch-fraction", type=float, default=0.0, help="share of steps that fan out to sub-agents (f)")
    w.add_argument("--fan-out", type=float, default=0.0, help="sub-agents per branching step (g)")
    w.add_argument("--tokens-in", type=int, required=True, help="prompt tokens per call (system + tools + history)")
    w.add_argument("--tokens-out", type=int, required=True, help="generated tokens per call")
    w.add_argument("--price-in", type=float, default=0.0, help="price per million prompt tokens")
    w.add_argument("--price-out", type=float, default=0.0, help="price per million generated tokens")
    w.add_argument("--peak-factor", type=float, default=8.0, help="peak call rate over the daily mean (default 8)")
    w.add_argument("--step-latency", type=float, required=True, help="seconds per model call at the target load")
    w.add_argument(
        "--tool-latency", type=float, default=0.0, help="seconds of tool time between calls (tasks stay warm meanwhile)"
    )
    w.add_argument(
        "--shared-prefix", type=int, default=0, help="prompt tokens every call shares (stored once with prefix caching)"
    )
    m = p.add_argument_group("model and replica")
    m.add_argument("--model", help="model name; known families supply their geometry")
    m.add_argument("--parameters", help="parameter count (8B, 135M) when the model is not a known family")
    m.add_argument("--layers", type=int)
    m.add_argument("--kv-heads", type=int)
    m.add_argument("--head-dim", type=int)
    m.add_argument("--weight-bits", type=int, choices=(4, 8, 16, 32))
    m.add_argument("--gpu", help="GPU product label, e.g. NVIDIA-H100-80GB-HBM3 (supplies its memory)")
    m.add_argument("--gpu-memory", help="memory per GPU, e.g. 80Gi (overrides --gpu's)")
    m.add_argument("--tp", type=int, default=1, help="tensor-parallel size")
    m.add_argument("--pp", type=int, default=1, help="pipeline-parallel size")
    m.add_argument("--max-model-len", type=int, help="vLLM --max-model-len (default: one call's context)")
    m.add_argument("--max-num-seqs", type=int, default=256)
    m.add_argument("--gpu-memory-utilization", type=float, default=0.9)
    m.add_argument("--kv-cache-dtype", default="auto", choices=("auto", "fp8", "fp8_e4m3", "fp8_e5m2"))
    m.add_argument("--dtype", default="auto", choices=("auto", "bfloat16", "float16", "float32"))
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _shape(args: argparse.Namespace) -> ModelShape | None:
    explicit = [args.parameters, args.layers, args.kv_heads, args.head_dim]
    if all(v is not None for v in explicit):
        return explicit_shape(
            args.parameters,
            args.layers,
            args.kv_heads,
            args.head_dim,
            args.weight_bits,
            name=args.model,
            family=args.model or "model",
        )
    if any(v is not None for v in explicit):
        raise CapacityError("give all of --parameters, --layers, --kv-heads and --head-dim, or none")
    if not args.model:
        return None
    known = lookup(args.model)
    if known is None:
        raise CapacityError(
            f"{args.model!r} is not a known family: give --parameters, --layers, --kv-heads and --head-dim"
        )
    if args.weight_bits:
        known = ModelShape(**{**known.__dict__, "weight_bits": args.weight_bits})
    return ModelShape(**{**known.__dict__, "family": args.model.rsplit("/", 1)[-1]})


def _gpu_memory(args: argparse.Namespace) -> int | None:
    if args.gpu_memory:
        return int(parse_quantity(args.gpu_memory))
    mib = gpu_memory_mib(args.gpu)
    if args.gpu and mib is None:
        raise CapacityError(f"memory of {args.gpu!r} is not known: give --gpu-memory")
    return mib * MiB if mib else None


def plan_command(args: argparse.Namespace, out: TextIO) -> int:
    profile = WorkloadProfile(
        users=args.users,
        tasks_per_user_per_day=args.tasks_per_user,
        steps_per_task=args.steps,
        tokens_in_per_call=args.tokens_in,
        tokens_out_per_call=args.tokens_out,
        step_latency_s=args.step_latency,
        branch_fraction=args.branch_fraction,
        fan_out=args.fan_out,
        price_in_per_mtok=args.price_in,
        price_out_per_mtok=args.price_out,
        peak_factor=args.peak_factor,
        tool_latency_s=args.tool_latency,
        shared_prefix_tokens=args.shared_prefix,
    )
    shape = _shape(args)
    memory = _gpu_memory(args)
    cap: ReplicaCapacity | None = None
    errors: list[str] = []
    cfg = None
    if shape is not None and memory is not None:
        cfg = ServingConfig(
            gpu_memory_bytes=memory,
            tensor_parallel=args.tp,
            pipeline_parallel=args.pp,
            gpu_memory_utilization=args.gpu_memory_utilization,
            kv_cache_dtype=args.kv_cache_dtype,
            dtype=args.dtype,
            max_model_len=args.max_model_len or (args.tokens_in + args.tokens_out),
            max_num_seqs=args.max_num_seqs,
        )
        cap = replica_capacity(shape, cfg)
        errors = fit_problems(shape, cfg, cap)
        context = args.tokens_in + args.tokens_out
        if cfg.max_model_len and cfg.max_model_len < context:
            errors.append(
                f"--max-model-len {cfg.max_model_len:,} is shorter than one call's context ({context:,} tokens): "
                "vLLM would reject the calls"
            )
    fleet = size_fleet(profile, cap if not errors else None, args.max_num_seqs)
    if args.json:
        doc: dict[str, Any] = {"workload": asdict(profile), "fleet": asdict(fleet), "errors": errors}
        if cap is not None:
            doc["replica"] = asdict(cap)
        json.dump(doc, out, indent=2)
        out.write("\n")
    else:
        _print_plan(fleet, cap, cfg, errors, out)
    return 1 if errors else 0


def _print_plan(
    f: FleetPlan, cap: ReplicaCapacity | None, cfg: ServingConfig | None, errors: list[str], out: TextIO
) -> None:
    rows: list[Row] = [
        ("calls per task  c = s(1+fg)", _num(f.calls_per_task, 1)),
        ("tasks per day", _num(f.tasks_per_day)),
        ("calls per day", _num(f.calls_per_day)),
        ("prompt tokens per day", _num(f.tokens_in_per_day)),
        ("output tokens per day", _num(f.tokens_out_per_day)),
        ("cost per day", _num(f.cost_per_day, 2)),
        ("cost per task", _num(f.cost_per_task, 4)),
        ("mean calls/s", _num(f.mean_qps, 2)),
        ("peak calls/s", _num(f.peak_qps, 2)),
        ("concurrent calls at peak (Little)", _num(f.concurrent_calls, 1)),
        ("tasks mid-flight at peak", _num(f.warm_tasks, 1)),
        ("P(task meets >= 1 p99 call)", f"{f.p_task_sees_p99_call:.0%}"),
    ]
    _table("workload", rows, out)
    if cap is not None and cfg is not None:
        rrows: list[Row] = [
            (
                "GPUs",
                f"{cap.gpus} (TP {cfg.tensor_parallel} x PP {cfg.pipeline_parallel}) x {gib(cap.gpu_memory_bytes)}",
            ),
            ("usable (x utilization)", gib(cap.usable_bytes)),
            ("weights", f"{gib(cap.weights_bytes)} ({cap.weight_bits} bit)"),
            ("working reserve", gib(cap.reserve_bytes)),
            ("KV cache", gib(cap.kv_free_bytes)),
            ("KV per token", f"{cap.kv_bytes_per_token / 1024:,.0f} KiB"),
            ("KV tokens", _num(cap.kv_tokens)),
            ("max model len", _num(cfg.max_model_len or 0)),
        ]
        _table("replica", rrows, out)
    frows: list[Row] = [("context per call", _num(f.context_tokens))]
    if f.sequences_per_replica is not None:
        frows += [
            ("calls one replica holds", _num(f.sequences_per_replica)),
            ("replicas for calls in flight", _num(f.replicas_for_calls or 0)),
            ("replicas to keep tasks warm", _num(f.replicas_for_warm_tasks or 0)),
            ("replicas", _num(f.replicas or 0)),
            ("GPUs", _num(f.gpus or 0)),
        ]
    elif errors:
        frows.append(("replicas", "not sized: the replica cannot serve (see errors)"))
    else:
        frows.append(("replicas", "give --model (or geometry) and --gpu/--gpu-memory to size replicas"))
    _table("fleet", frows, out)
    for n in f.notes:
        out.write(f"note: {n}\n")
    for e in errors:
        out.write(f"error: {e}\n")


# --- capacity --------------------------------------------------------------------------------


def _capacity_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "capacity",
        help="capacity figures and fit check of the ModelReplicaSets in a YAML file",
        description="Capacity figures and fit check of the ModelReplicaSets in a YAML file.",
    )
    p.add_argument("file", help="YAML file (one or more documents; other kinds are skipped)")
    p.add_argument(
        "--gpu-memory",
        help="memory per GPU as the nodes report it (e.g. 81559Mi); default: the spec's or the product's",
    )
    p.add_argument("--json", action="store_true")


def _assessment_doc(name: str, a: Assessment) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "name": name,
        "shapeSource": a.shape_source,
        "memorySource": a.memory_source,
        "errors": list(a.errors),
        "warnings": list(a.warnings),
    }
    doc["status"] = a.status().wire()
    if a.capacity is not None:
        doc["replica"] = asdict(a.capacity)
    return doc


def capacity_command(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    with open(args.file, encoding="utf-8") as fh:
        docs = [d for d in yaml.safe_load_all(fh) if isinstance(d, dict) and d.get("kind") == "ModelReplicaSet"]
    if not docs:
        err.write(f"{args.file}: no ModelReplicaSet found\n")
        return 2
    node_mib = int(parse_quantity(args.gpu_memory) // MiB) if args.gpu_memory else None
    results = []
    rc = 0
    for d in docs:
        name = (d.get("metadata") or {}).get("name", "?")
        try:
            mrs = ModelReplicaSet.model_validate(d)
        except pydantic.ValidationError as e:
            err.write(f"{name}: invalid ModelReplicaSet:\n{e}\n")
            rc = 2
            continue
        a = assess(mrs.spec, node_mib)
        results.append(_assessment_doc(name, a))
        if a.errors:
            rc = max(rc, 1)
        if not args.json:
            _print_assessment(name, mrs, a, out)
    if args.json:
        json.dump(results, out, indent=2)
        out.write("\n")
    return rc


def _print_assessment(name: str, mrs: ModelReplicaSet, a: Assessment, out: TextIO) -> None:
    e = mrs.spec.engine
    rows: list[Row] = [("model", f"{mrs.spec.model.name} ({a.shape_source or 'shape unknown'})")]
    rows.append(
        (
            "GPUs per replica",
            (f"{e.gpus_per_replica} (TP {e.tensor_parallel_size} x PP {e.pipeline_parallel_size})"),
        )
    )
    c = a.capacity
    if c is not None:
        rows += [
            ("GPU memory", f"{gib(c.gpu_memory_bytes)} ({a.memory_source})"),
            ("usable (x utilization)", gib(c.usable_bytes)),
            ("weights", f"{gib(c.weights_bytes)} ({c.weight_bits} bit)"),
            ("working reserve", gib(c.reserve_bytes)),
            ("KV cache", gib(c.kv_free_bytes)),
            ("KV per token", f"{c.kv_bytes_per_token:,} bytes"),
            ("KV tokens per replica", _num(c.kv_tokens)),
            ("context", _num(c.context) if c.context else "unknown"),
            ("concurrent sequences", _num(c.concurrent_sequences) if c.concurrent_sequences is not None else "unknown"),
        ]
    _table(f"ModelReplicaSet {name}", rows, out)
    for w in a.warnings:
        out.write(f"warning: {w}\n")
    for x in a.errors:
        out.write(f"error: {x}\n")


# --- entry point -----------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    parser = argparse.ArgumentParser(
        prog="agentfleet",
        description=(
            "agentfleet capacity planning (no cluster access); `agentfleet eval --help` for the evaluation harness."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _plan_parser(sub)
    _capacity_parser(sub)
    args = parser.parse_args(argv)
    try:
        if args.command == "plan":
            return plan_command(args, out)
        return capacity_command(args, out, err)
    except (CapacityError, OSError) as e:
        err.write(f"agentfleet {args.command}: {e}\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
