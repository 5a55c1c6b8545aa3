"""`agentfleet plan` and `agentfleet capacity`: tables, JSON and exit codes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from agentfleet_client.cli import main

ROOT = Path(__file__).resolve().parents[3]
WORKLOAD = [
    "plan",
    "--users", "1000",
    "--tasks-per-user", "5",
    "--steps", "12",
    "--branch-fraction", "0.3",
    "--fan-out", "3",
    "--tokens-in", "20000",
    "--tokens-out", "500",
    "--price-in", "0.5",
    "--price-out", "1.5",
    "--step-latency", "3",
]  # fmt: skip


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    rc = main(list(argv), out, err)
    return rc, out.getvalue(), err.getvalue()


def test_plan_table() -> None:
    rc, out, _ = run(*WORKLOAD, "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu", "NVIDIA-H100-80GB-HBM3")
    assert rc == 0
    assert "calls per task  c = s(1+fg)" in out and "22.8" in out
    assert "cost per day" in out and "1,225.50" in out
    assert "replicas for calls in flight" in out


def test_plan_json() -> None:
    rc, out, _ = run(
        *WORKLOAD,
        "--model",
        "meta-llama/Llama-3.1-8B-Instruct",
        "--gpu-memory",
        "80Gi",
        "--kv-cache-dtype",
        "fp8",
        "--json",
    )
    assert rc == 0
    doc = json.loads(out)
    assert doc["fleet"]["calls_per_day"] == pytest.approx(114_000)
    assert doc["fleet"]["concurrent_calls"] == pytest.approx(8 * 114_000 / 86_400 * 3)
    assert doc["replica"]["kv_bytes_per_token"] == 65536
    # max model len defaults to one call's context, 20,500 tokens.
    assert doc["replica"]["context"] == 20_500
    assert doc["fleet"]["replicas"] >= 1 and doc["errors"] == []


def test_plan_refuses_a_model_that_does_not_fit() -> None:
    rc, out, _ = run(*WORKLOAD, "--model", "meta-llama/Llama-3.1-70B-Instruct", "--gpu", "NVIDIA-H100-80GB-HBM3")
    assert rc == 1
    assert "error:" in out and "smallest tensorParallelSize that fits is" in out
    assert "not sized" in out


def test_plan_with_explicit_geometry_and_bad_inputs() -> None:
    rc, out, _ = run(
        *WORKLOAD,
        "--parameters",
        "135M",
        "--layers",
        "30",
        "--kv-heads",
        "3",
        "--head-dim",
        "64",
        "--gpu-memory",
        "24Gi",
        "--json",
    )
    assert rc == 0 and json.loads(out)["replica"]["weights_bytes"] == 270_000_000
    rc, _, err = run(*WORKLOAD, "--model", "my-org/custom", "--gpu-memory", "24Gi")
    assert rc == 2 and "not a known family" in err
    rc, _, err = run(*WORKLOAD, "--parameters", "8B", "--gpu-memory", "24Gi")
    assert rc == 2 and "give all of" in err
    rc, out, _ = run(
        *WORKLOAD, "--model", "meta-llama/Llama-3.1-8B-Instruct", "--gpu-memory", "80Gi", "--max-model-len", "8192"
    )
    assert rc == 1 and "shorter than one call's context" in out


def test_capacity_of_example_files() -> None:
    rc, out, _ = run("capacity", str(ROOT / "examples/modelreplicaset-multinode.yaml"))
    assert rc == 0
    assert "ModelReplicaSet llama-405b" in out and "16 (TP 8 x PP 2)" in out and "concurrent sequences" in out
    rc, out, _ = run("capacity", str(ROOT / "examples/agentfleet.yaml"), "--json")
    assert rc == 0
    (doc,) = json.loads(out)
    assert doc["name"] == "llama-8b" and doc["status"]["kvBytesPerToken"] == 65536


def test_capacity_refusal_and_invalid_files(tmp_path: Path) -> None:
    f = tmp_path / "mrs.yaml"
    f.write_text(
        "apiVersion: agentfleet.io/v1alpha1\nkind: ModelReplicaSet\nmetadata: {name: big}\n"
        "spec:\n  model: {name: meta-llama/Llama-3.1-70B-Instruct}\n  engine: {maxModelLen: 4096}\n"
        "  gpu: {product: NVIDIA-H100-80GB-HBM3}\n"
    )
    rc, out, _ = run("capacity", str(f))
    assert rc == 1 and "error:" in out and "is 2" in out
    f.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n")
    assert run("capacity", str(f))[0] == 2
    f.write_text(
        "apiVersion: agentfleet.io/v1alpha1\nkind: ModelReplicaSet\nmetadata: {name: bad}\nspec: {model: {name: "
        "x}, engine: {tensorParallelSize: 0}}\n"
    )
    rc, _, err = run("capacity", str(f))
    assert rc == 2 and "invalid ModelReplicaSet" in err
    assert run("capacity", str(tmp_path / "missing.yaml"))[0] == 2
