"""The demo's scripted agent in front of simulated vLLM replicas.

agentfleet_sim models vLLM's timing, token counts and prefix cache, but its completions are
synthetic text: it never writes a tool call, so an agent loop on it would end after one step
without searching anything. This proxy keeps the simulator in the path of every call (the request
goes to the simulated replica, which decides how long the call takes and how many tokens it
counted, prefix-cache hits included) and replaces only the reply's content with a scripted
decision: search the docs first, delegate sub-questions when the goal asks to compare, then answer
from the passages that retrieval returned. The demo prints that this is what happened.

    python -m e2e.demo.scripted_agent --retrieval-tool search_docs --spawn-tool delegate \\
        --route 127.0.0.1:PORT=http://127.0.0.1:SIMPORT/v1 [--route ...]

Each --route is one listening port forwarding to one simulated replica, so the workers' sticky
routing still picks a replica and the replica's prefix cache sees that task's history.

With --pods NS/MRS instead of --route, it stands in for the ModelReplicaSet's pods as they come and
go (the autoscaler's): every 2 s it lists the pods, backs each Running one with a free simulated
replica of the --upstream pool, listening on the pod's IP and "http" port (made a local address),
and lets go of a pod's replica once the pod is being deleted (the ModelReplicaSet drains a
replica before it deletes the pod). It lists the backed pods for the demo's Prometheus
(--sd-file, e2e/demo/prom.py) under their pod names.

    python -m e2e.demo.scripted_agent --retrieval-tool search_docs --pods NS/MRS --kubectl K --kubeconfig C \\
        --upstream http://127.0.0.1:SIMPORT/v1 [--upstream ...] --sd-file F --routes-file R
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from agentfleet_runtime.tools.retrieval import parse_passages


@dataclass
class Decision:
    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)


def _goal_and_turn(messages: list[dict[str, Any]]) -> tuple[str, int]:
    goal = next((m.get("content") or "" for m in messages if m.get("role") == "user"), "")
    turn = sum(1 for m in messages if m.get("role") == "assistant")
    return goal, turn


def _passages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Passages of every retrieval observation in the history, in order."""
    out: list[dict[str, Any]] = []
    for m in messages:
        if m.get("role") == "tool":
            out += parse_passages(m.get("content") or "")
    return out


def _sub_answers(messages: list[dict[str, Any]]) -> list[str]:
    """Answers that sub-agents reported back: the Spawn tool's observation is a summary line and
    then a JSON list of the children's results."""
    out = []
    for m in messages:
        text = m.get("content") or "" if m.get("role") == "tool" else ""
        if "[" not in text or parse_passages(text):
            continue
        try:
            results = json.loads(text[text.index("[") :])
        except ValueError:
            continue
        out += [str(r["answer"]) for r in results if isinstance(r, dict) and r.get("answer")]
    return out


def split_question(goal: str) -> list[str]:
    """'Compare X and Y' -> two sub-questions; anything else -> none."""
    low = goal.lower()
    if not low.startswith("compare ") or " and " not in low:
        return []
    left, right = goal[len("compare ") :].split(" and ", 1)
    return [f"What is {left.strip()}?", f"What is {right.strip().rstrip('?.')}?"]


def decide(messages: list[dict[str, Any]], retrieval_tool: str, spawn_tool: str | None) -> Decision:
    """Pure: the next move of a support agent, from the conversation so far."""
    goal, turn = _goal_and_turn(messages)
    subs = split_question(goal) if spawn_tool else []
    if turn == 0:
        return Decision(tool_calls=[{"name": retrieval_tool, "arguments": {"query": goal}}])
    if subs and turn == 1:
        return Decision(tool_calls=[{"name": spawn_tool, "arguments": {"goals": subs}}])
    passages = _passages(messages)
    if not passages:
        return Decision(content=f"I found nothing in the documentation about: {goal}")
    best = passages[0]
    snippet = " ".join(str(best["text"]).split())[:240]
    answer = f"{snippet} [source: {best['source']}]"
    for sub in _sub_answers(messages)[:2]:
        answer += f"\n- sub-agent: {' '.join(sub.split())[:160]}"
    return Decision(content=answer)


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def reply_body(decision: Decision, model: str, usage: dict[str, Any]) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": decision.content or None}
    if decision.tool_calls:
        msg["tool_calls"] = [
            {
                "id": f"call_{uuid.uuid4().hex[:12]}",
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c["arguments"])},
            }
            for c in decision.tool_calls
        ]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls" if decision.tool_calls else "stop"}],
        "usage": usage,
    }


class Route:
    def __init__(
        self, upstream: str, retrieval_tool: str, spawn_tool: str | None, session: aiohttp.ClientSession
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.retrieval_tool = retrieval_tool
        self.spawn_tool = spawn_tool
        self.session = session

    async def chat(self, request: web.Request) -> web.Response:
        body = await request.json()
        messages = body.get("messages") or []
        decision = decide(messages, self.retrieval_tool, self.spawn_tool)
        # The simulated replica times the call and counts its tokens; it generates as many as the
        # decision is long, so the usage the worker bills matches the reply it gets.
        out_tokens = _tokens(json.dumps(decision.tool_calls) if decision.tool_calls else decision.content)
        upstream_body = {"model": body.get("model"), "messages": [_flat(m) for m in messages], "max_tokens": out_tokens}
        async with self.session.post(self.upstream + "/chat/completions", json=upstream_body) as resp:
            data = await resp.json(content_type=None)
            if resp.status != 200:
                return web.json_response(data, status=resp.status)
        return web.json_response(reply_body(decision, body.get("model") or "", data.get("usage") or {}))

    async def passthrough(self, request: web.Request) -> web.Response:
        base = self.upstream[: -len("/v1")] if self.upstream.endswith("/v1") else self.upstream
        async with self.session.get(base + request.path) as resp:
            return web.Response(body=await resp.read(), status=resp.status, content_type=resp.content_type)


def _flat(m: dict[str, Any]) -> dict[str, Any]:
    """The simulator's chat template reads role and content only; tool calls become text so
    that they still count as tokens of the history."""
    content = m.get("content") or ""
    if m.get("tool_calls"):
        content += json.dumps(m["tool_calls"])
    return {"role": m.get("role", "user") if m.get("role") != "tool" else "user", "content": content or " "}


async def listen(
    host: str, port: int, upstream: str, retrieval_tool: str, spawn_tool: str | None, session: aiohttp.ClientSession
) -> web.AppRunner:
    route = Route(upstream, retrieval_tool, spawn_tool, session)
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", route.chat)
    for path in ("/health", "/metrics", "/v1/models"):
        app.router.add_get(path, route.passthrough)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def serve(routes: list[tuple[str, int, str]], retrieval_tool: str, spawn_tool: str | None) -> None:
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600))
    runners = []
    for host, port, upstream in routes:
        runners.append(await listen(host, port, upstream, retrieval_tool, spawn_tool, session))
        print(f"scripted-agent http://{host}:{port}/v1 -> {upstream}", flush=True)
    stop = _stop_on_signals()
    await stop.wait()
    for r in runners:
        await r.cleanup()
    await session.close()


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


# --- standing in for a ModelReplicaSet's pods --------------------------------------------------------


def serving_pods(pods: list[dict[str, Any]]) -> dict[str, tuple[str, int]]:
    """Pod name -> (pod IP, "http" container port) of the pods a replica server runs in: Running,
    not being deleted, not a multi-node replica's worker."""
    out = {}
    for p in pods:
        meta, status = p["metadata"], p.get("status") or {}
        if meta.get("deletionTimestamp") or (meta.get("labels") or {}).get("agentfleet.io/role") == "worker":
            continue
        if status.get("phase") != "Running" or not status.get("podIP"):
            continue
        port = next(
            (
                cp["containerPort"]
                for c in p["spec"]["containers"]
                for cp in c.get("ports") or []
                if cp.get("name") == "http"
            ),
            None,
        )
        if port is not None:
            out[meta["name"]] = (status["podIP"], int(port))
    return out


def assign(
    backed: dict[str, str], live: list[str], pool: list[str], released: list[str]
) -> tuple[dict[str, str], list[str]]:
    """(new pod -> upstream, pods to let go). A new pod gets an upstream no pod has had yet, else
    the one released longest ago (``released``, oldest first), so a simulated replica's in-flight
    work and prefix cache are not handed to the next pod at once. Pods beyond the pool wait."""
    gone = [p for p in backed if p not in live]
    freed = [backed[p] for p in gone]  # released now: the last choice
    taken = {u for p, u in backed.items() if p in live}
    order = [u for u in pool if u not in released and u not in freed] + [u for u in released if u not in freed] + freed
    free = [u for u in order if u not in taken]
    new = {}
    for pod in sorted(p for p in live if p not in backed):
        if not free:
            break
        new[pod] = free.pop(0)
    return new, gone


async def back_pods(args: argparse.Namespace) -> None:
    from e2e.demo import prom
    from e2e.harness.procs import route_local

    namespace, mrs = args.pods.split("/", 1)
    session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600))
    backed: dict[str, str] = {}  # pod -> upstream
    runners: dict[str, web.AppRunner] = {}
    addresses: dict[str, tuple[str, int]] = {}
    released: list[str] = []
    stop = _stop_on_signals()
    cmd = [
        args.kubectl,
        "--kubeconfig",
        args.kubeconfig,
        "-n",
        namespace,
        "get",
        "pods",
        "-l",
        f"agentfleet.io/modelreplicaset={mrs}",
        "-o",
        "json",
    ]
    while not stop.is_set():
        proc = await asyncio.to_thread(subprocess.run, cmd, capture_output=True, text=True, timeout=60)
        if proc.returncode == 0:
            live = serving_pods(json.loads(proc.stdout)["items"])
            new, gone = assign(backed, list(live), args.upstream, released)
            for pod in gone:
                upstream = backed.pop(pod)
                released = [u for u in released if u != upstream] + [upstream]
                await runners.pop(pod).cleanup()
                addresses.pop(pod, None)
                print(f"{time.strftime('%H:%M:%S')} pod {pod} gone: released {upstream}", flush=True)
            for pod, upstream in new.items():
                ip, port = live[pod]
                error = route_local(ip, Path(args.routes_file))
                if error:
                    print(f"{time.strftime('%H:%M:%S')} pod {pod}: cannot make {ip} local: {error}", flush=True)
                    continue
                try:
                    runners[pod] = await listen(ip, port, upstream, args.retrieval_tool, args.spawn_tool, session)
                except OSError as e:
                    print(f"{time.strftime('%H:%M:%S')} pod {pod}: cannot listen on {ip}:{port}: {e}", flush=True)
                    continue
                backed[pod], addresses[pod] = upstream, (ip, port)
                released = [u for u in released if u != upstream]
                print(
                    f"{time.strftime('%H:%M:%S')} scripted-agent http://{ip}:{port}/v1 -> {upstream} (pod {pod})",
                    flush=True,
                )
            if new or gone or not Path(args.sd_file).exists():
                prom.write_sd(
                    Path(args.sd_file),
                    prom.replica_targets(namespace, mrs, {p: f"{ip}:{port}" for p, (ip, port) in addresses.items()}),
                )
        else:
            print(f"{time.strftime('%H:%M:%S')} listing pods failed: {proc.stderr.strip()}", flush=True)
        try:
            await asyncio.wait_for(stop.wait(), 2.0)
        except TimeoutError:
            pass
    for r in runners.values():
        await r.cleanup()
    await session.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m e2e.demo.scripted_agent")
    p.add_argument("--route", action="append", default=[], help="HOST:PORT=UPSTREAM_BASE_URL")
    p.add_argument("--retrieval-tool", required=True)
    p.add_argument("--spawn-tool")
    p.add_argument("--pods", help="NAMESPACE/MODELREPLICASET: back its pods as they come and go")
    p.add_argument(
        "--upstream", action="append", default=[], help="with --pods: a simulated replica's base URL (the pool)"
    )
    p.add_argument("--kubectl", default="kubectl")
    p.add_argument("--kubeconfig")
    p.add_argument("--sd-file", help="with --pods: Prometheus file_sd list of the backed pods")
    p.add_argument("--routes-file", help="with --pods: where the pod IPs made local are recorded")
    args = p.parse_args(argv)
    if args.pods:
        missing = [f for f in ("upstream", "kubeconfig", "sd_file", "routes_file") if not getattr(args, f)]
        if missing:
            p.error("--pods needs " + ", ".join("--" + f.replace("_", "-") for f in missing))
        asyncio.run(back_pods(args))
        return 0
    if not args.route:
        p.error("give --route (fixed replicas) or --pods (a ModelReplicaSet's pods)")
    routes = []
    for r in args.route:
        listen, upstream = r.split("=", 1)
        host, port = listen.rsplit(":", 1)
        routes.append((host, int(port), upstream))
    asyncio.run(serve(routes, args.retrieval_tool, args.spawn_tool))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
