"""CPU agent models on llama-server: per-step latency and the decisions they make, side by side.

A real worker (this process) on a real redis-server and Milvus Lite runs the dev questions of
e2e/harness/plinth.py (invented facts, so a right answer must come through a search) one task at a time
against llama-server serving each model, in each decision mode (spec.decisions.mode):
JSONSchema (schema-constrained JSON decisions) and ToolCalls (the engine's native tool calls,
tools rendered by the GGUF's chat template, <tool_call> text as fallback) as the baseline.

Printed per model x mode x run: model-call seconds per step (p50/p95, repair calls included),
task seconds, steps per task, tasks that searched, answers stating the expected facts, answers
citing the supporting page, sub-agents spawned, repair turns, end reasons.

    python -m e2e.bench.cpu_agent_models [--models qwen2.5-coder-0.5b,qwen2.5-coder-1.5b]
        [--modes JSONSchema,ToolCalls] [--runs 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from agentfleet_contract.fleet_keys import Keys
from agentfleet_contract.percentiles import percentile as pct
from agentfleet_contract.runtime_config import RuntimeConfig

from agentfleet_runtime.core import metrics
from agentfleet_runtime.core.config import limits_of
from agentfleet_runtime.server.submission import Submission, new_task
from agentfleet_runtime.store.connection import connect
from agentfleet_runtime.store.tasks import TaskStore
from agentfleet_runtime.tools.retriever import Hybrid, Retriever
from agentfleet_runtime.worker import Worker
from e2e.harness import llama_server
from e2e.harness.milvus import milvus_lite
from e2e.harness.plinth import DELEGATE, DEV_QUESTIONS, encoder, fleet_config, make_collection
from e2e.harness.ports import free_port, wait_http
from e2e.harness.procs import Proc
from e2e.harness.redis import redis_server


async def run_questions(
    redis_url: str, model_url: str, milvus_uri: str, collection: str, mode: str, model: str = "qwen", api_key: str = ""
) -> list[dict]:
    fleet = "bench" + uuid.uuid4().hex[:6]
    doc = fleet_config(
        redis_url,
        fleet,
        model_url,
        system=DELEGATE,
        mode=mode,
        policies=[{"tool": "search", "firstStep": True}] if mode == "JSONSchema" else [],
    )
    doc["model"] = {**doc["model"], "name": model, **({"apiKey": api_key} if api_key else {})}
    config = RuntimeConfig.model_validate(doc)
    store = TaskStore(connect(redis_url), Keys(fleet))
    await store.ensure_group()
    retriever = Retriever(milvus_uri, collection, encoder(), hybrid=Hybrid())
    worker = Worker(config, retriever_factory=lambda c, t: retriever)
    await worker.start()
    out = []
    try:
        for question, facts, sources in DEV_QUESTIONS:
            repairs0 = metrics.DECISION_REPAIRS._value.get()
            t0 = time.monotonic()
            _, tid = await store.submit(
                new_task(uuid.uuid4().hex, Submission(question, "", limits_of(config), None, "", {}), time.time())
            )
            while True:
                st = (await store.statuses([tid]))[0]
                if st and st["status"] in ("done", "dead", "cancelled"):
                    break
                await asyncio.sleep(0.1)
            seconds = time.monotonic() - t0
            tree = [tid, *await store.children(tid)]
            steps = {t: await store.steps(t) for t in tree}
            answer = st.get("answer") or ""
            low = answer.lower()
            calls = [c.name for t in tree for s in steps[t] for c in s.tool_calls]
            out.append(
                {
                    "question": question,
                    "answer": answer,
                    "reason": st.get("reason"),
                    "seconds": seconds,
                    "steps": len(steps[tid]),
                    "step_seconds": [s.model_seconds for t in tree for s in steps[t] if s.model_seconds],
                    "searched": "search" in calls,
                    "spawned": len(tree) - 1,
                    "correct": all(any(a.lower() in low for a in alts) for alts in facts),
                    "cited": all(src in answer for src in sources),
                    "repairs": metrics.DECISION_REPAIRS._value.get() - repairs0,
                    "calls": calls,
                }
            )
            r = out[-1]
            print(
                f"    {r['seconds']:6.1f}s {r['steps']} steps "
                f"{'S' if r['searched'] else '-'}{'D' if r['spawned'] else '-'} "
                f"{'correct' if r['correct'] else 'WRONG  '} {'cited' if r['cited'] else 'no-cite'} {r['reason']:<12} "
                f"{answer[:90]!r}",
                flush=True,
            )
    finally:
        await worker.kill()
        await store.r.aclose()
    return out


def summary(rows: list[dict]) -> dict:
    steps = [s for r in rows for s in r["step_seconds"]]
    n = len(rows)
    return {
        "step_p50": pct(steps, 50),
        "step_p95": pct(steps, 95),
        "model_calls": len(steps),
        "task_p50": pct([r["seconds"] for r in rows], 50),
        "task_p95": pct([r["seconds"] for r in rows], 95),
        "steps_per_task": statistics.mean(r["steps"] for r in rows),
        "searched": sum(r["searched"] for r in rows) / n,
        "correct": sum(r["correct"] for r in rows) / n,
        "cited": sum(r["cited"] for r in rows) / n,
        "spawned": sum(r["spawned"] for r in rows),
        "repairs": sum(r["repairs"] for r in rows),
        "reasons": {k: sum(1 for r in rows if r["reason"] == k) for k in sorted({r["reason"] for r in rows})},
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="qwen2.5-coder-0.5b,qwen2.5-coder-1.5b")
    p.add_argument("--modes", default="JSONSchema,ToolCalls")
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--slots", type=int, default=2)
    p.add_argument("--json", help="write every row and summary here")
    args = p.parse_args()
    logging.disable(logging.INFO)
    binary = llama_server.ensure_binary()
    results = []
    with tempfile.TemporaryDirectory() as tmpd, redis_server() as redis_url:
        tmp = Path(tmpd)
        with milvus_lite(tmp / "milvus", ("milvus_lite",), start_seconds=120) as milvus:
            milvus_uri = milvus.uri
            collection = "plinth_bench"
            make_collection(milvus_uri, collection)
            for model in args.models.split(","):
                gguf = llama_server.ensure_model(model)
                port = free_port()
                log = tmp / f"{model}.log"
                server = Proc(llama_server.command(binary, gguf, port, alias="qwen", slots=args.slots), log=log)
                try:
                    t0 = time.monotonic()
                    wait_http(f"http://127.0.0.1:{port}/health", 300, server)
                    print(f"== {model}: llama-server up in {time.monotonic() - t0:.1f}s", flush=True)
                    for mode in args.modes.split(","):
                        for run in range(args.runs):
                            print(f"  -- {mode}, run {run + 1}", flush=True)
                            rows = asyncio.run(
                                run_questions(redis_url, f"http://127.0.0.1:{port}/v1", milvus_uri, collection, mode)
                            )
                            results.append(
                                {"model": model, "mode": mode, "run": run + 1, "rows": rows, "summary": summary(rows)}
                            )
                finally:
                    server.end(kill=False)
    print(
        "\nmodel                mode        run  step p50  step p95  task p50  task p95  steps/task  searched  "
        "correct  cited  sub-agents  repairs  ends"
    )
    for r in results:
        s = r["summary"]
        print(
            f"{r['model']:<20} {r['mode']:<11} {r['run']:>3}  {s['step_p50']:7.2f}s  {s['step_p95']:7.2f}s  "
            f"{s['task_p50']:7.1f}s  {s['task_p95']:7.1f}s"
            f"  {s['steps_per_task']:10.1f}  {s['searched']:8.0%}  {s['correct']:7.0%}  {s['cited']:5.0%}  "
            f"{s['spawned']:10d}  {s['repairs']:7.0f}  {s['reasons']}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
