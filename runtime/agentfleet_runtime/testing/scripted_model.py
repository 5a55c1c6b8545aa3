"""A scripted OpenAI-compatible chat-completions server: deterministic agent behaviour for tests,
benchmarks and demos, with injectable 500s, hangs and latency.

What it answers depends only on the request (the goal, i.e. the first user message, and the turn,
i.e. how many assistant messages the request already has), so a task resumed on another worker
gets the same replies, and a test can predict every step.

Behaviour comes from ``#key=value`` directives in the goal (no script needed), or from script
rules (``match`` = substring of the goal) that set the same keys or give explicit turns:

    steps=N        N model calls in all: N-1 tool steps, then the final answer (default 1)
    tool=NAME      tool the tool steps call (default echo); calls=K parallel calls per step
    args=JSON      arguments of those calls (default {"n": <turn>})
    spawn=G        first turn spawns G children (goals "branch i of <goal> #latency=<child_latency>")
    latency=S      seconds per call; child_latency=S for spawned children (default 0)
    jitter=F       spread each call's latency uniformly over latency x [1-F, 1+F]: real model
                   calls vary, and identical latencies keep a thousand tasks in lockstep. The
                   draw is a hash of (goal, turn, attempt), so it is the same on every run
                   and every worker (``jittered``)
    fail=N         the first N calls of every turn answer 500; hang=S sleeps S before answering
                   (only on the first call of each turn, so a retry gets through)
    text=1         write tool calls as text (<tool_call>...) instead of native tool_calls
    answer=TEXT    the final answer (default "done: <goal words> after <turns> steps")
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import json
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from agentfleet_runtime.core import fastjson
from agentfleet_runtime.core.types import ModelReply
from agentfleet_runtime.model.client import ModelRequest, parse_chat_completion
from agentfleet_runtime.model.prompt import SESSION_LABEL
from agentfleet_runtime.testing.server import LocalServer

_DIRECTIVE = re.compile(r"#(\w+)=(\S+)")
# Unique ids without a uuid4 per call (the in-process stub's cost counts in the benchmarks).
_ID_PREFIX = uuid.uuid4().hex[:6]
_ids = itertools.count(1)


def _new_id() -> str:
    return f"{_ID_PREFIX}{next(_ids):010x}"


def directives(goal: str) -> dict[str, str]:
    return dict(_parsed_directives(goal))


def jittered(latency: float, jitter: float, goal: str, turn: int, nth: int = 1) -> float:
    """``latency`` spread over [1 - jitter, 1 + jitter] by a hash of the call (mean ``latency``)."""
    # A real hash: CRC32 is linear, and the draws of one goal's turns would be correlated.
    u = int.from_bytes(hashlib.blake2b(f"{goal}\x00{turn}\x00{nth}".encode(), digest_size=8).digest(), "big") / 2**64
    return latency * (1.0 + jitter * (2.0 * u - 1.0))


@functools.lru_cache(maxsize=4096)
def _parsed_directives(goal: str) -> tuple[tuple[str, str], ...]:
    return tuple(_DIRECTIVE.findall(goal))


def strip_directives(goal: str) -> str:
    return " ".join(_DIRECTIVE.sub("", goal).split())


def _goal_and_turn(messages: list[dict[str, Any]]) -> tuple[str, int, str]:
    # One pass collecting the roles, counted in C: the in-process stub's CPU counts in the
    # benchmarks of the worker it stands in front of.
    roles = [m.get("role") for m in messages]
    goal = messages[roles.index("user")].get("content") or "" if "user" in roles else ""
    if goal.startswith(SESSION_LABEL):  # a session's quoted history comes first: the goal is the request
        goal = goal.rpartition("\n</session_history>\n\nThe request:\n")[2]
    turn = roles.count("assistant")
    last_obs = ""
    for m in reversed(messages):
        if m.get("role") in ("tool", "user") and m is not messages[1]:
            last_obs = m.get("content") or ""
            break
    return goal, turn, last_obs


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


@dataclass
class Reply:
    """What one call should do: wait, fail, or answer with content and/or tool calls."""

    delay: float = 0.0
    status: int = 200
    content: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    text_calls: bool = False


@dataclass
class ScriptedModel:
    """The pure behaviour: request messages -> plan. Shared by the HTTP server and the in-process client."""

    rules: list[dict[str, Any]] = field(default_factory=list)
    latency: float = 0.0
    calls: Counter[tuple[str, int]] = field(default_factory=Counter)
    total_calls: int = 0
    failures_left: int = 0  # global fault injection: the next N calls answer ``fault_status``
    fault_status: int = 500

    def settings_for(self, goal: str) -> dict[str, Any]:
        s: dict[str, Any] = {}
        for rule in self.rules:
            if str(rule.get("match", "")) in goal:
                s.update({k: v for k, v in rule.items() if k != "match"})
                break
        s.update(directives(goal))
        return s

    def reply(self, messages: list[dict[str, Any]]) -> Reply:
        goal, turn, last_obs = _goal_and_turn(messages)
        s = self.settings_for(goal)
        self.total_calls += 1
        key = (goal, turn)
        self.calls[key] += 1
        nth = self.calls[key]
        delay = float(s.get("latency", self.latency))
        if "jitter" in s:
            delay = jittered(delay, float(s["jitter"]), goal, turn, nth)
        if self.failures_left > 0:
            self.failures_left -= 1
            return Reply(delay=delay, status=self.fault_status)
        if nth <= int(s.get("fail", 0)):
            return Reply(delay=delay, status=500)
        if nth == 1 and float(s.get("hang", 0)) > 0:
            delay += float(s["hang"])
        text = str(s.get("text", "0")) in ("1", "true", "True")
        turns = s.get("turns")
        if isinstance(turns, list):  # explicit script: one entry per turn, the last one repeats
            entry = turns[min(turn, len(turns) - 1)]
            calls = [{"name": c["name"], "arguments": c.get("arguments", {})} for c in entry.get("tool_calls", [])]
            return Reply(
                delay=delay + float(entry.get("latency", 0)),
                status=int(entry.get("status", 200)),
                content=entry.get("content", ""),
                tool_calls=calls,
                text_calls=text,
            )
        if turn == 0 and int(s.get("spawn", 0)) > 0:
            child = f" #latency={s['child_latency']}" if "child_latency" in s else ""
            goals = [f"branch {i} of {strip_directives(goal)}{child}" for i in range(int(s["spawn"]))]
            return Reply(
                delay=delay,
                tool_calls=[{"name": s.get("spawn_tool", "spawn"), "arguments": {"goals": goals}}],
                text_calls=text,
            )
        steps = int(s.get("steps", 1)) + (1 if int(s.get("spawn", 0)) > 0 else 0)
        if turn < steps - 1:
            args = json.loads(s["args"]) if "args" in s else {"n": turn}
            calls = [{"name": s.get("tool", "echo"), "arguments": args} for _ in range(int(s.get("calls", 1)))]
            return Reply(delay=delay, tool_calls=calls, text_calls=text)
        answer = s.get("answer") or f"done: {strip_directives(goal)[:80]} after {turn + 1} steps"
        if last_obs and "answer" not in s:
            answer += f" | last observation: {last_obs[:120]}"
        return Reply(delay=delay, content=str(answer))

    def body(self, plan: Reply, messages: list[dict[str, Any]], model: str = "scripted") -> dict[str, Any]:
        msg: dict[str, Any] = {"role": "assistant", "content": plan.content or None}
        if plan.tool_calls and plan.text_calls:
            msg["content"] = "\n".join(f"<tool_call>{json.dumps(c)}</tool_call>" for c in plan.tool_calls)
        elif plan.tool_calls:
            msg["tool_calls"] = [
                {
                    "id": f"call_{_new_id()}",
                    "type": "function",
                    "function": {"name": c["name"], "arguments": fastjson.dumps(c["arguments"])},
                }
                for c in plan.tool_calls
            ]
        prompt = sum([max(1, len(m.get("content") or "") // 4) for m in messages])  # _tokens, inlined
        completion = _tokens(fastjson.dumps(msg))  # orjson: the stub's CPU counts in the benchmarks
        return {
            "id": f"chatcmpl-{_new_id()}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": msg, "finish_reason": "tool_calls" if "tool_calls" in msg else "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
        }


class ScriptedClient:
    """An in-process ModelClient over ScriptedModel: no HTTP, for benchmarks of the loop itself."""

    def __init__(self, model: ScriptedModel | None = None) -> None:
        self.model = model or ScriptedModel()

    async def complete(self, request: ModelRequest) -> ModelReply:
        plan = self.model.reply(request.messages)
        if plan.delay:
            await asyncio.sleep(plan.delay)
        if plan.status != 200:
            from agentfleet_runtime.model.client import ModelError

            raise ModelError(f"scripted status {plan.status}", status=plan.status)
        return parse_chat_completion(self.model.body(plan, request.messages))

    async def close(self) -> None:
        return None


class ScriptedModelServer(LocalServer):
    """The HTTP face: POST /v1/chat/completions, GET /v1/models, /admin/stats, POST /admin/faults."""

    path = "/v1"

    def __init__(self, model: ScriptedModel | None = None, api_key: str | None = None) -> None:
        super().__init__()
        self.model = model or ScriptedModel()
        self.api_key = api_key  # like vLLM's --api-key: /v1 answers 401 without this bearer token
        self.in_flight = 0
        self.peak_in_flight = 0
        self.requests: list[dict[str, Any]] = []  # bodies, kept only when record=True
        self.record = False
        self.traceparents: list[str] = []  # W3C traceparent headers of the requests that had one

    @classmethod
    def from_file(cls, path: str) -> ScriptedModelServer:
        doc = yaml.safe_load(Path(path).read_text()) or {}
        return cls(ScriptedModel(rules=doc.get("rules", []), latency=float(doc.get("latency", 0))))

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024, middlewares=[self._auth])
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/admin/stats", self._stats)
        app.router.add_post("/admin/faults", self._faults)
        return app

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        given = request.headers.get("Authorization")
        if self.api_key and request.path.startswith("/v1") and given != f"Bearer {self.api_key}":
            return web.json_response({"error": "Unauthorized"}, status=401)
        return await handler(request)

    async def _chat(self, request: web.Request) -> web.Response:
        # orjson both ways: each request carries the whole history, and the standard library's
        # json was most of this server's CPU per call (the HTTP benchmarks share its cores).
        body = await request.json(loads=fastjson.loads)
        if tp := request.headers.get("traceparent"):
            self.traceparents.append(tp)
        if self.record:
            self.requests.append(body)
        messages = body.get("messages") or []
        plan = self.model.reply(messages)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if plan.delay:
                await asyncio.sleep(plan.delay)
        finally:
            self.in_flight -= 1
        if plan.status != 200:
            return web.json_response({"error": {"message": f"scripted failure {plan.status}"}}, status=plan.status)
        return web.json_response(self.model.body(plan, messages, body.get("model", "scripted")), dumps=fastjson.dumps)

    async def _models(self, _: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "scripted", "object": "model"}]})

    async def _stats(self, _: web.Request) -> web.Response:
        return web.json_response(
            {"calls": self.model.total_calls, "in_flight": self.in_flight, "peak_in_flight": self.peak_in_flight}
        )

    async def _faults(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.model.failures_left = int(body.get("count", 0))
        self.model.fault_status = int(body.get("status", 500))
        return web.json_response({"failures_left": self.model.failures_left})
