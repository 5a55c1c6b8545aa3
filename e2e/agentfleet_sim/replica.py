"""One simulated replica, transport-agnostic: engine + runner + readiness + faults.

The HTTP server (server.py) is a thin wrapper over ``Replica.completion``; simulated-clock
benchmarks call the same method in-process (no sockets), so faults, draining and startup delay
behave identically in both modes. Errors are ``ApiError`` with the HTTP status vLLM would send.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator
from typing import Any

from .adapters import AdapterSlots
from .config import FaultConfig, ReplicaConfig
from .engine import Engine, RequestTooLong
from .episodes import SlowEpisodes
from .exposition import render_metrics
from .faultdraws import CallDraws, prompt_key
from .kv_cache import HashedPrompt
from .openai_api import (
    ApiError,
    GenerationRequest,
    Kind,
    first_chunk,
    full_response,
    models_response,
    parse_request,
    token_chunk,
    usage_chunk,
)
from .quirks import non_portable_schema_path
from .runner import Completion, EngineRunner, ReplicaStopped, RequestHandle
from .stats import EngineStats
from .tokenizer import ChatTokenizer
from .toolcalls import decide_tool_call

Chunk = dict[str, Any]


class Replica:
    def __init__(
        self, config: ReplicaConfig | None = None, name: str = "replica-0", call_draws: CallDraws | None = None
    ) -> None:
        self.config = config or ReplicaConfig()
        self.name = name
        self.engine = Engine(self.config.engine)
        self.quirks = self.config.quirks
        self.engine.ttft_from_scheduling = self.quirks.ttft_from_scheduling
        self.engine.tool_calls_reason = self.quirks.tool_calls_finish_reason
        self.engine.queue_time_waiters_only = self.quirks.queue_time_waiters_only
        self._metrics_fail_next = False  # quirks.metrics_error_after_disconnect: armed by a disconnect
        self.runner = EngineRunner(self.engine)
        self.faults: FaultConfig = self.config.faults
        self.tokenizer = ChatTokenizer(piece_chars=self.quirks.tokenizer_piece_chars)
        self._fault_rng = random.Random(self.faults.seed)
        # Keyed draws (faults.draws "call"): the fleet's shared book, else one of its own.
        self._call_draws = call_draws or CallDraws(f"{self.faults.seed}/{name}")
        self._episodes: SlowEpisodes | None = None
        self._ids = itertools.count()
        self._ready_at: float | None = None
        self._stopped = False
        self._stop_event: asyncio.Event | None = None
        self.calls = 0  # completion calls admitted past faults, for tests and drain checks
        self.slow_calls = 0  # calls made slow_factor times slower (slow_fraction or an episode)
        self.orphans = 0  # calls whose client went away but that ran on (quirks.abort_on_disconnect off)
        self.tool_calls = 0  # answers written as tool calls (quirks.tool_call_rate)
        self.tokenized = 0  # POST /tokenize answered
        self.adapters = AdapterSlots(self.config.engine.max_loras, self.config.engine.lora_swap_s)
        # Calls that arrived while the model was still loading (refused with 503): a router that
        # reads readiness right sends none; scale-to-zero's e2e test and bench count them.
        self.calls_while_loading = 0

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._stop_event = asyncio.Event()
        self._ready_at = loop.time() + self.config.startup_seconds
        self._new_episodes(loop.time())
        self.runner.start()

    async def stop(self) -> None:
        self._stopped = True
        if self._stop_event is not None:
            self._stop_event.set()
        await self.runner.stop()

    @property
    def started(self) -> bool:
        return self._ready_at is not None and not self._stopped

    @property
    def loaded(self) -> bool:
        """The model finished 'loading' (startup delay elapsed)."""
        return self.started and asyncio.get_running_loop().time() >= (self._ready_at or 0.0)

    @property
    def ready(self) -> bool:
        """What /health says: loaded, not draining, not told to fail."""
        return self.loaded and not self.faults.draining and not self.faults.health_fail

    @property
    def inflight(self) -> int:
        return self.runner.inflight

    def configure(self, **changes: Any) -> FaultConfig:
        self.faults = self.faults.update(changes)
        if changes.get("stall_seconds") and self._ready_at is not None:
            self.runner.stall(self.faults.stall_seconds)
        if "seed" in changes:
            self._fault_rng = random.Random(self.faults.seed)
            self._call_draws = CallDraws(f"{self.faults.seed}/{self.name}")  # leaves the fleet's book
        if self._ready_at is not None and changes.keys() & {"seed", "slow_episode_fraction", "slow_episode_seconds"}:
            self._new_episodes(asyncio.get_running_loop().time())
        return self.faults

    def _new_episodes(self, now: float) -> None:
        f = self.faults
        # Its own generator (seeded from the fault seed): the schedule must not shift with the
        # number of calls, or two routing policies would meet different episodes.
        self._episodes = SlowEpisodes(
            f.slow_episode_fraction, f.slow_episode_seconds, seed=f.seed * 7919 + 1, start=now
        )

    def in_slow_episode(self) -> bool:
        return self._episodes is not None and self._episodes.active(asyncio.get_running_loop().time())

    def slow_episodes(self) -> list[tuple[float, float]]:
        """(start, end) of the slow episodes begun so far (for reports)."""
        return self._episodes.episodes(asyncio.get_running_loop().time()) if self._episodes is not None else []

    def next_call_slow(self, body: Any = None, kind: Kind = "chat") -> bool:
        """Whether a call admitted now will be slow (a slow draw, a slow episode, a stall),
        peeking at the fault draws without using them up: for the same-run oracle of hedging
        benchmarks, which hedges exactly the calls that will be slow. With keyed draws
        (faults.draws "call") it needs the call: its request ``body`` (a body this replica would
        refuse counts as not slow)."""
        if self.faults.draws == "call":
            if body is None:
                raise ValueError("keyed fault draws: next_call_slow needs the call's body")
            try:
                prompt = parse_request(body, kind, self.config.engine.served_name, self.tokenizer).prompt
            except ApiError:
                return False
            peek = self._call_draws.peek(prompt_key(prompt))
        else:
            peek = random.Random()
            peek.setstate(self._fault_rng.getstate())
        peek.random()  # the error draw comes first
        slow = peek.random() < self.faults.slow_fraction or self.in_slow_episode()
        return (slow and self.faults.slow_factor > 1.0) or self.runner.paused_until > asyncio.get_running_loop().time()

    def drain(self) -> None:
        self.configure(draining=True)

    def stats(self) -> EngineStats:
        """The engine's counters and histograms as of now (fused decode iterations that have
        started are committed first: engine.py)."""
        self.runner.sync()
        return self.engine.stats

    def state(self) -> dict[str, Any]:
        self.runner.sync()
        return {
            "name": self.name,
            "loaded": self.loaded,
            "calls_while_loading": self.calls_while_loading,
            "ready": self.ready,
            "draining": self.faults.draining,
            "inflight": self.inflight,
            "running": self.engine.num_running,
            "waiting": self.engine.num_waiting,
            "kv_cache_usage": self.engine.pool.usage(),
        }

    # -- read-only endpoints ---------------------------------------------------------------
    def models(self) -> dict[str, Any]:
        cfg = self.config.engine
        out = models_response(cfg.served_name, cfg.model, cfg.max_model_len)
        base = out["data"][0]
        # vLLM lists each registered adapter beside the base model, the base as its parent.
        out["data"] += [
            {**base, "id": name, "root": path, "parent": cfg.served_name}
            for name, path in self.adapters.registered.items()
        ]
        return out

    def load_adapter(self, body: Any) -> str:
        """``POST /v1/load_lora_adapter``."""
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        return self.adapters.load(str(body.get("lora_name") or ""), str(body.get("lora_path") or ""))

    def unload_adapter(self, body: Any) -> str:
        """``POST /v1/unload_lora_adapter``."""
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        return self.adapters.unload(str(body.get("lora_name") or ""))

    def metrics_text(self) -> bytes:
        if self._metrics_fail_next:
            self._metrics_fail_next = False
            why = "metrics unavailable after a client disconnect (quirks.metrics_error_after_disconnect)"
            raise ApiError(500, why, "InternalServerError")
        self.runner.sync()
        return render_metrics(self.engine, self.config.metrics_flavor, self.quirks)

    def tokenize(self, body: Any) -> dict[str, Any]:
        """vLLM's ``POST /tokenize``: the prompt's token count under the chat template (``messages``)
        or of a plain ``prompt``; a 404 where the engine has none (quirks.tokenize_endpoint off)."""
        if not self.quirks.tokenize_endpoint:
            raise ApiError(404, "Not Found", "NotFoundError")
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        kind: Kind = "chat" if "messages" in body else "completion"
        cfg = self.config.engine
        parsed = parse_request({**body, "model": cfg.served_name}, kind, cfg.served_name, self.tokenizer)
        self.tokenized += 1
        return {"count": len(parsed.prompt), "max_model_len": cfg.max_model_len, "tokens": parsed.prompt}

    # -- completions -----------------------------------------------------------------------
    async def completion(self, body: Any, kind: Kind = "chat") -> Chunk | AsyncIterator[Chunk]:
        """Serve one OpenAI call: a response dict, or an async iterator of stream chunks."""
        self._admit()
        served = self.config.engine.served_name
        named = body.get("model") if isinstance(body, dict) else None
        adapter = named if isinstance(named, str) and named in self.adapters.registered else None
        req = parse_request({**body, "model": served} if adapter else body, kind, served, self.tokenizer)
        if self.quirks.strict_tool_schemas and isinstance(body, dict):
            for i, tool in enumerate(body.get("tools") or ()):
                where = non_portable_schema_path(
                    (tool.get("function") or {}).get("parameters") if isinstance(tool, dict) else None
                )
                if where:
                    raise ApiError(
                        400,
                        f"tools[{i}].function.{where}: a schema object is not supported here (only true/false)",
                        param="tools",
                    )
        slow_factor = await self._faults_before_call(req.prompt)
        if adapter is not None:
            swap = self.adapters.acquire(adapter)
            if swap > 0:
                await asyncio.sleep(swap)  # the adapter moves into a GPU slot before the call runs
        request_id = f"{self.name}-{next(self._ids)}"
        try:
            handle = self.runner.submit(
                request_id, req.prompt, max_tokens=req.max_tokens, stream=req.stream, ignore_eos=req.ignore_eos
            )
        except RequestTooLong as exc:
            raise ApiError(400, str(exc), param="messages" if kind == "chat" else "prompt") from exc
        self.calls += 1
        tool_call = None
        if kind == "chat" and self.quirks.tool_call_rate > 0.0:
            q = self.quirks
            tool_call = decide_tool_call(body, handle.request.content_seed, q.tool_call_rate, q.tool_call_steps)
            self.tool_calls += tool_call is not None
            handle.request.tool_call = tool_call is not None
        if req.stream:
            return self._stream(handle, req, slow_factor, tool_call, model=adapter or served)
        return full_response(kind, request_id, adapter or served, await self._wait(handle, slow_factor), tool_call)

    async def generate(
        self,
        prompt: list[int] | HashedPrompt,
        max_tokens: int | None = None,
        *,
        ignore_eos: bool = False,
        tool_call: bool = False,
    ) -> Completion:
        """Token-level call for simulations that build prompts themselves (no JSON, no
        tokenizer); startup, draining and faults apply exactly as for HTTP calls. A prompt that
        grows call by call is cheaper as a HashedPrompt (kv_cache.py). ``tool_call``: the answer
        stands for a tool call (counted apart under quirks.tool_calls_finish_reason)."""
        self._admit()
        slow_factor = await self._faults_before_call(prompt)
        request_id = f"{self.name}-{next(self._ids)}"
        try:
            handle = self.runner.submit(
                request_id,
                prompt if isinstance(prompt, HashedPrompt) else list(prompt),
                max_tokens=max_tokens,
                ignore_eos=ignore_eos,
            )
        except ValueError as exc:
            raise ApiError(400, str(exc)) from exc
        handle.request.tool_call = tool_call
        self.calls += 1
        return await self._wait(handle, slow_factor)

    async def _faults_before_call(self, prompt: list[int] | HashedPrompt) -> float:
        """Apply hang / error / added latency; returns the slow-down factor for this call."""
        faults = self.faults
        rng = self._call_draws.take(prompt_key(prompt)) if faults.draws == "call" else self._fault_rng
        # Draw both decisions every call so one setting does not shift the other's sequence.
        fail = rng.random() < faults.error_rate
        slow = rng.random() < faults.slow_fraction or self.in_slow_episode()
        if faults.hang:
            await self._hang()
        if fail:
            raise ApiError(500, "injected fault: internal server error", "InternalServerError")
        if faults.added_latency_s > 0:
            await asyncio.sleep(faults.added_latency_s)
        if slow and faults.slow_factor > 1.0:
            self.slow_calls += 1
            return faults.slow_factor
        return 1.0

    def _admit(self) -> None:
        if self._stopped or self._ready_at is None:
            raise ApiError(503, "replica is not running", "ServiceUnavailableError")
        if not self.loaded:
            self.calls_while_loading += 1
            raise ApiError(503, "model is still loading", "ServiceUnavailableError")
        if self.faults.draining:
            raise ApiError(503, "replica is draining", "ServiceUnavailableError")

    async def _hang(self) -> None:
        assert self._stop_event is not None
        await self._stop_event.wait()
        raise ApiError(503, "replica stopped", "ServiceUnavailableError")

    async def _wait(self, handle: RequestHandle, slow_factor: float) -> Completion:
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            done = await handle.done
        except asyncio.CancelledError:
            self._client_gone(handle)
            raise
        except ReplicaStopped as exc:
            raise ApiError(503, "replica stopped", "ServiceUnavailableError") from exc
        if slow_factor > 1.0:
            await asyncio.sleep((slow_factor - 1.0) * (loop.time() - start))
        return done

    def _client_gone(self, handle: RequestHandle) -> None:
        """vLLM aborts a request whose client went away (frees its slot, counts ``abort``); an
        engine without that (quirks.abort_on_disconnect off) lets it run to the end."""
        self._metrics_fail_next = self.quirks.metrics_error_after_disconnect
        if self.quirks.abort_on_disconnect:
            self.runner.abort(handle.request.request_id)
        else:
            self.orphans += 1

    async def _stream(
        self,
        handle: RequestHandle,
        req: GenerationRequest,
        slow_factor: float,
        tool_call: Chunk | None = None,
        *,
        model: str,
    ) -> AsyncIterator[Chunk]:
        loop = asyncio.get_running_loop()
        rid = handle.request.request_id
        assert handle.tokens is not None
        try:
            opening = first_chunk(req.kind, rid, model)
            if opening is not None:
                yield opening
            last = loop.time()
            while True:
                event = await handle.tokens.get()
                if event is None:
                    raise ApiError(503, "replica stopped", "ServiceUnavailableError")
                if slow_factor > 1.0:
                    await asyncio.sleep((slow_factor - 1.0) * (loop.time() - last))
                last = loop.time()
                yield token_chunk(
                    req.kind,
                    rid,
                    model,
                    event.request.content_seed,
                    event.index,
                    event.finish_reason,
                    tool_call,
                    event.request.target_tokens,
                )
                if event.finish_reason is not None:
                    break
            if req.include_usage:
                yield usage_chunk(req.kind, rid, model, await handle.done)
        finally:
            if not handle.done.done():
                self._client_gone(handle)
