"""The demo's model servers, one launcher per ``--model`` mode. Each starts (or reuses) the
servers that answer for a ModelReplicaSet's placed replicas and returns {replica name: OpenAI base
URL the workers call} and a note on what answers."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from e2e.demo import prom
from e2e.harness.installers import ensure_llama_server, smollm_gguf
from e2e.harness.ports import port_open

if TYPE_CHECKING:
    from e2e.demo.driver import Demo

PY = sys.executable
Servers = tuple[dict[str, str], str]  # replica name -> OpenAI base URL, and a note on what answers
Tools = tuple[str, str | None]  # the retrieval tool and the spawn tool (None: none)


def sim_urls(log: Path) -> list[str]:
    """The OpenAI base URLs the simulator printed in its newest run's log."""
    try:
        text = log.read_text(errors="replace").split("\n===== ")[-1]
    except OSError:
        return []
    return [line.split("OpenAI base_url ")[1].split(",")[0] for line in text.splitlines() if "OpenAI base_url " in line]


def code_stamp(*paths: Path) -> str:
    """Newest mtime of the packages' sources: a running process from older code is restarted."""
    return str(max((p.stat().st_mtime_ns for path in paths for p in path.rglob("*.py")), default=0))


def sim(demo: Demo, mrs_obj: dict[str, Any], names: list[str], served: str, tools: Tools) -> Servers:
    """agentfleet_sim's replicas behind e2e/demo/scripted_agent.py, which scripts the agent's decisions."""
    spec = mrs_obj["spec"]
    retrieval_tool, spawn_tool = tools
    engine = spec.get("engine") or {}
    auto = spec.get("autoscaling") or {}
    # A pool of simulated replicas, one for each replica the autoscaler may ask for: a pod it
    # adds gets one of them (e2e/demo/scripted_agent.py --pods), as a pod would start a server.
    pool = max(len(names), int(auto.get("maxReplicas", 0)) if auto.get("enabled") else 0)
    # One process serves the pool, each replica on its own port. Timing of an 8B model on
    # one H100: weights 16 GB / 3.35 TB/s ~ 5 ms per decode step plus overheads (8 ms),
    # prefill ~40K tokens/s; the simulator's defaults model a 70B TP-4 replica.
    timing = {"max-num-seqs": str(engine.get("maxNumSeqs", 256)), "decode-base-s": "0.008", **demo.sim_timing}
    cmd_tail = [
        "--replicas",
        str(pool),
        "--base-port",
        "0",
        "--model",
        spec["model"]["name"],
        "--served-name",
        served,
        "--max-model-len",
        str(engine.get("maxModelLen", 32768)),
        "--prefill-tps",
        "40000",
        "--output-tokens-median",
        "60",
    ]
    for flag, value in timing.items():
        cmd_tail += [f"--{flag}", value]
    meta = demo.start(
        "model",
        {"cmd": cmd_tail},
        lambda p: [PY, "-m", "agentfleet_sim", *cmd_tail],
        [],
        lambda m: len(sim_urls(demo.procs.log_path("model"))) == pool,
    )
    upstreams = sim_urls(demo.procs.log_path("model"))
    demo.pods = demo.pod_addresses(mrs_obj["metadata"]["name"], names)
    pods = demo.pods
    agent = [PY, "-m", "e2e.demo.scripted_agent", "--retrieval-tool", retrieval_tool] + (
        ["--spawn-tool", spawn_tool] if spawn_tool else []
    )
    code = code_stamp(Path(__file__).parent)
    if pods:
        # The scripted agent process stands in for the pods, those of now and those the autoscaler adds.
        mrs_name = mrs_obj["metadata"]["name"]
        cmd = [
            *agent,
            "--pods",
            f"{demo.ns}/{mrs_name}",
            "--kubectl",
            demo.kc.kubectl,
            "--kubeconfig",
            demo.kc.kubeconfig,
            "--sd-file",
            str(demo.prom_dir / prom.REPLICAS_SD),
            "--routes-file",
            str(demo.dir / "local-routes"),
        ]
        for url in upstreams:
            cmd += ["--upstream", url]
        demo.start(
            "scripted-agent",
            {"cmd": cmd, "pid": meta["pid"], "code": code},
            lambda p: cmd,
            [],
            lambda m: all(port_open(port, ip) for _, ip, port in pods.values()),
        )
        urls = {name: f"http://{ip}:{port}/v1" for name, (_, ip, port) in pods.items()}
    else:
        ports = [f"r{i}" for i in range(len(names))]

        def build(p: dict[str, int]) -> list[str]:
            return [
                *agent,
                *(a for i in range(len(names)) for a in ("--route", f"127.0.0.1:{p[f'r{i}']}={upstreams[i]}")),
            ]

        pol = demo.start(
            "scripted-agent",
            {"sim": upstreams, "pid": meta["pid"], "tools": [retrieval_tool, spawn_tool], "pods": None, "code": code},
            build,
            ports,
            lambda m: all(port_open(m["ports"][f"r{i}"]) for i in range(len(names))),
        )
        urls = {name: f"http://127.0.0.1:{pol['ports'][f'r{i}']}/v1" for i, name in enumerate(names)}
    note = (
        "agentfleet_sim: each placed replica is a simulated vLLM (timing, tokens, prefix cache); the simulator writes "
        "no "
        "tool calls, so e2e/demo/scripted_agent.py scripts the agent's decisions (search, delegate, answer from the "
        "passages)"
    )
    return urls, note


def qwen(demo: Demo, mrs_obj: dict[str, Any], names: list[str], served: str, tools: Tools) -> Servers:
    """llama.cpp's llama-server with a Qwen2.5-Coder GGUF per placed replica: the model decides."""
    from e2e.harness import llama_server

    binary = llama_server.ensure_binary()
    gguf = llama_server.ensure_model()
    # The replicas share this machine's cores: split them rather than oversubscribe.
    threads = max(1, (os.cpu_count() or 1) // len(names))
    urls = demo.local_model_servers(
        names,
        {"binary": binary, "gguf": str(gguf), "served": served, "threads": threads},
        lambda port: llama_server.command(binary, gguf, port, alias=served, threads=threads),
        "/health",
    )
    return (
        urls,
        f"{gguf.name} on llama.cpp's llama-server, CPU, {threads} thread(s) per placed replica, served as {served!r}: "
        "every decision (search, delegate, answer) is the model's, as JSON decisions (spec.decisions.mode JSONSchema)",
    )


def smollm2(demo: Demo, mrs_obj: dict[str, Any], names: list[str], served: str, tools: Tools) -> Servers:
    """llama-cpp-python's server with SmolLM2-135M per placed replica."""
    ensure_llama_server()
    gguf = str(smollm_gguf())

    def build_llama(port: int) -> list[str]:
        # One llama.cpp server per placed replica, so sticky routing has replicas to pick.
        return [
            PY,
            "-m",
            "llama_cpp.server",
            "--model",
            gguf,
            "--model_alias",
            served,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "8192",
        ]

    return (
        demo.local_model_servers(names, {"gguf": gguf, "served": served}, build_llama, "/v1/models"),
        f"SmolLM2-135M-Instruct (Q4_1 GGUF) on llama.cpp, CPU, one server per placed replica, served as {served!r}: a "
        "real model, "
        "its own decisions (a 135M model rarely writes a valid tool call)",
    )


def vllm(demo: Demo, mrs_obj: dict[str, Any], names: list[str], served: str, tools: Tools) -> Servers:
    """vLLM on this machine's GPU, one server per placed replica (check_model_mode vouched for the
    GPU, the package and the weights)."""
    weights = os.environ["AGENTFLEET_DEMO_VLLM_MODEL"]
    util = max(0.1, round(0.85 / len(names), 2))

    def command(port: int) -> list[str]:
        return [
            *(PY, "-m", "vllm.entrypoints.openai.api_server", "--model", weights, "--served-model-name", served),
            *("--host", "127.0.0.1", "--port", str(port), "--gpu-memory-utilization", str(util)),
        ]

    return (
        demo.local_model_servers(
            names, {"weights": weights, "served": served, "util": util}, command, "/health", timeout=540
        ),
        f"vLLM on this machine's GPU serving {weights} as {served!r}, one server per placed replica",
    )


LAUNCHERS: dict[str, Callable[..., Servers]] = {"sim": sim, "qwen": qwen, "smollm2": smollm2, "vllm": vllm}
