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

In the CPU engine image (e2e/cluster/node/vllm-sim) it listens on the replica pod's port in front of the
simulator in the same pod.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
import uuid
from dataclasses import dataclass, field
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m e2e.demo.scripted_agent")
    p.add_argument("--route", action="append", default=[], help="HOST:PORT=UPSTREAM_BASE_URL")
    p.add_argument("--retrieval-tool", required=True)
    p.add_argument("--spawn-tool")
    args = p.parse_args(argv)
    if not args.route:
        p.error("give --route HOST:PORT=UPSTREAM_BASE_URL (one per replica)")
    routes = []
    for r in args.route:
        listen, upstream = r.split("=", 1)
        host, port = listen.rsplit(":", 1)
        routes.append((host, int(port), upstream))
    asyncio.run(serve(routes, args.retrieval_tool, args.spawn_tool))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
