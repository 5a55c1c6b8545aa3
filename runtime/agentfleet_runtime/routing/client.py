"""``RoutingModelClient``: the ``ModelClient`` the agent loop calls, with sticky prefix-cache
routing, failover, outlier ejection, hedging, rate limits and model tiers.

One call, in order:
1. Tier: kinds named in AgentFleet.spec.routineSteps go to the routine ModelReplicaSet.
2. Rate limit: reserve the estimated tokens in Redis (model and tenant buckets), wait for the slot
   or fail at once with ``RateLimited`` when the slot is beyond maxWaitSeconds.
3. Attempts (1 + max_retries): the replica order for the task key (root task with sub-agent
   affinity, so sub-agents reuse their parent's cached prefix) puts the bounded-load choice first;
   a task that the bound, a failover or a winning hedge moved off its rendezvous home stays on the
   replica that served it (where its prefix now is) while that replica is under the load cap.
   With hedging on and the kind's percentile known, a call still running at that percentile gets
   a duplicate on the next replica, budget permitting; the first answer wins, the other is
   cancelled (which aborts it on the server, where the engine aborts: the budget in hedging.py
   charges each loser what it cost, a whole call where the engine runs it on). A failed attempt
   moves to the next replica in order after a full-jitter backoff; errors feed each replica's
   ejection machine.
4. Settle the rate-limit reservation with the usage the server reported.

Before all of it, a call that finds no serving replica at all waits for the first one, up to its
deadline: the ModelReplicaSet is asleep at zero or its first replica is still loading (a loading
replica is not in the EndpointSlices' ready set, so no call reaches it), and a task held across a
cold start must be served, not failed after its retries (docs/scale-to-zero.md).
"""

from __future__ import annotations

import asyncio
import functools
import random
import uuid
from collections.abc import Callable
from typing import Any

from agentfleet_runtime.core import tracing
from agentfleet_runtime.core.types import ModelReply
from agentfleet_runtime.model.client import ModelError, ModelRequest, parse_chat_completion, request_options
from agentfleet_runtime.model.wire import ContextGuard, PortableTools, ToolChoiceGuard
from agentfleet_runtime.routing.abortwatch import AbortWatch
from agentfleet_runtime.routing.backoff import full_jitter
from agentfleet_runtime.routing.hedging import loser_cost
from agentfleet_runtime.routing.metrics import RoutingMetrics, default_metrics
from agentfleet_runtime.routing.pool import ReplicaPool
from agentfleet_runtime.routing.ratelimit import RedisRateLimiter, Reservation, estimate_tokens
from agentfleet_runtime.routing.settings import Endpoint, Tier
from agentfleet_runtime.routing.sources import ReplicaSource
from agentfleet_runtime.routing.spillwait import RoomWaiter
from agentfleet_runtime.routing.streaming import StreamObserver
from agentfleet_runtime.routing.transport import AttemptTimeout, HttpTransport, Transport
from agentfleet_runtime.routing.ttfthedge import AttemptFailed as _Failed
from agentfleet_runtime.routing.ttfthedge import hedge_due, hedged_stream


def _tenant_of(request: ModelRequest) -> str:
    # ModelRequest has no tenant field yet; a runtime that adds one is picked up here.
    return str(getattr(request, "tenant", "") or "")


# How often a call waiting for the first replica looks again: a fraction of the 2 s of operator
# overhead a wake from zero may add (docs/scale-to-zero.md); reading the source is a tuple copy.
EMPTY_POLL_SECONDS = 0.1


class RoutingModelClient:
    def __init__(
        self,
        primary: tuple[Tier, ReplicaSource],
        *,
        routine: tuple[Tier, ReplicaSource] | None = None,
        routine_kinds: frozenset[str] = frozenset(),
        transport: Transport | None = None,
        routine_transport: Transport | None = None,
        rate_limiter: RedisRateLimiter | None = None,
        metrics: RoutingMetrics | None = None,
        timeout: float = 120.0,
        max_retries: int = 2,
        max_output_tokens: int = 1024,
        temperature: float = 0.0,
        send_tools: bool = True,
        tenant_of: Callable[[ModelRequest], str] = _tenant_of,
        backoff_base: float = 0.05,
        backoff_cap: float = 2.0,
        rng: random.Random | None = None,
        stream: bool = False,
    ) -> None:
        self.primary = ReplicaPool(*primary)
        self.routine = ReplicaPool(*routine) if routine is not None else None
        self.routine_kinds = routine_kinds
        self.transport: Transport = transport or HttpTransport()
        # The routine tier's own transport when its replicas require another API key than the
        # primary's (each ModelReplicaSet has its own); None: the primary's.
        self.routine_transport = routine_transport
        self.limiter = rate_limiter
        self.metrics = metrics or default_metrics()
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_output_tokens = max_output_tokens
        self.temperature = temperature
        self.send_tools = send_tools
        self.tenant_of = tenant_of
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.rng = rng or random.Random()
        self._starting: asyncio.Future[None] | None = None
        # Streamed calls: hedge on time to first token, answer text to delta_sink (ttfthedge.py).
        self.stream = stream
        self._portable = PortableTools()
        self._guards: dict[str, ContextGuard] = {}
        self._tool_choice = ToolChoiceGuard()
        self._watches: dict[str, AbortWatch] = {}
        self._rooms = RoomWaiter()
        self._probes: dict[tuple[str, str], asyncio.Task[None]] = {}  # (model, replica) -> its stall probe
        for tier_label, pool in (("primary", self.primary), ("routine", self.routine)):
            if pool is not None:
                pool.stalls.on_judged = functools.partial(self._stalled, pool)
                st = pool.settings
                kinds = ",".join(sorted(routine_kinds)) if tier_label == "routine" else "other"
                self.metrics.policy.labels(
                    tier_label, pool.tier.name, st.policy, str(st.load_bound_percent), str(st.hedging).lower(), kinds
                ).set(1)

    def _stalled(self, pool: ReplicaPool, replica: str) -> None:
        """``replica`` was judged stalled (stallwatch.py): count it, and probe it until it steps."""
        self.metrics.stalls.labels(pool.tier.name, replica).inc()
        key = (pool.tier.name, replica)
        if key not in self._probes:
            self._probes[key] = asyncio.get_running_loop().create_task(self._probe(pool, replica))
            self._probes[key].add_done_callback(lambda _: self._probes.pop(key, None))

    async def _probe(self, pool: ReplicaPool, replica: str) -> None:
        """Keep one one-token request on a replica judged stalled until a token comes from it (any
        call's or this one's): the calls routed around it cannot tell when it steps again."""
        loop = asyncio.get_running_loop()
        body = {
            "model": pool.tier.model,
            "messages": [{"role": "user", "content": "ping"}],
            "max_tokens": 1,
            "temperature": 0.0,
        }
        observer = StreamObserver(lambda: None, None, lambda: pool.stalls.progress(replica, loop.time()))
        while replica in pool.stalls.judged:
            endpoint = next((e for e in pool.source.endpoints() if e.name == replica), None)
            if endpoint is None:  # gone from the replica set
                pool.stalls.forget(replica)
                return
            wait = pool.stalls.probe_timeout(replica)
            began = loop.time()
            try:
                stream = self._transport(pool).stream(endpoint, body, wait, observer)  # type: ignore[attr-defined]
                await asyncio.wait_for(stream, wait)
                pool.stalls.progress(replica, loop.time())  # answered: it steps
            except (TimeoutError, ModelError):
                pool.stalls.probe_missed(replica)
                # A replica that fails fast is the ejection machine's; do not hammer it meanwhile.
                await asyncio.sleep(max(0.0, wait - (loop.time() - began)))

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the replica sources once; concurrent first calls all wait for the same start
        (an EndpointSlice source's first list), so none of them sees an empty replica set."""
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start_sources())
        await asyncio.shield(self._starting)

    async def _start_sources(self) -> None:
        for pool in self._pools():
            await pool.source.start()

    async def close(self) -> None:
        for probe in list(self._probes.values()):
            probe.cancel()
        await asyncio.gather(*self._probes.values(), return_exceptions=True)
        for watch in self._watches.values():
            await watch.close()
        for pool in self._pools():
            await pool.source.close()
        await self.transport.close()
        if self.routine_transport is not None:
            await self.routine_transport.close()

    def _transport(self, pool: ReplicaPool) -> Transport:
        if pool is self.routine and self.routine_transport is not None:
            return self.routine_transport
        return self.transport

    def _pools(self) -> list[ReplicaPool]:
        return [self.primary, *([self.routine] if self.routine else [])]

    # -- the seam --------------------------------------------------------------------------
    async def complete(self, request: ModelRequest) -> ModelReply:
        await self.start()
        loop = asyncio.get_running_loop()
        routine = self.routine is not None and request.kind in self.routine_kinds
        pool = self.routine if routine and self.routine is not None else self.primary
        tier = pool.tier
        self.metrics.tier_calls.labels("routine" if routine else "primary", tier.name, request.kind).inc()
        budget = request.timeout if request.timeout is not None else self.timeout * (self.max_retries + 1)
        deadline = loop.time() + budget
        await self._first_replica(pool, deadline, budget)
        body = self._body(tier, request)

        reservation: Reservation | None = None
        if self.limiter is not None:
            tokens = estimate_tokens(request.messages, body.get("tools") or [], body["max_tokens"])
            try:
                reservation = await self.limiter.reserve(
                    tier.name, self.tenant_of(request), tokens, max_wait=max(0.0, budget)
                )
            except ModelError as e:
                self.metrics.ratelimit_rejected.labels(tier.name, getattr(e, "scope", "model")).inc()
                raise
            self.metrics.ratelimit_wait.labels(tier.name).observe(reservation.wait_seconds)
            await self.limiter.wait(reservation)

        used = 0
        try:
            reply = await self._attempts(pool, request, body, deadline)
            used = reply.usage.total
            return reply
        finally:
            if reservation is not None and self.limiter is not None:
                await asyncio.shield(self.limiter.settle(reservation, used))

    async def _first_replica(self, pool: ReplicaPool, deadline: float, budget: float) -> None:
        """Wait while the replica set is empty (asleep, or waking: see the module docstring)."""
        loop = asyncio.get_running_loop()
        while not pool.source.endpoints():
            left = deadline - loop.time()
            if left <= 0:
                raise ModelError(f"no serving replica of {pool.tier.name} within {budget:.0f}s", retryable=True)
            await asyncio.sleep(min(EMPTY_POLL_SECONDS, left))

    def _body(self, tier: Tier, req: ModelRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": tier.model,
            "messages": req.messages,
            "max_tokens": min(self.max_output_tokens, req.max_tokens or self.max_output_tokens),
            "temperature": self.temperature,
        }
        body.update(request_options(req, self.send_tools, self._portable))
        return body

    def abort_watch(self, pool: ReplicaPool) -> AbortWatch:
        watch = self._watches.get(pool.tier.name)
        if watch is None:
            read = getattr(self._transport(pool), "abort_count", None)

            async def read_aborts(base_url: str) -> float | None:
                if read is None:
                    raise LookupError("this transport cannot read the engine's counters")
                return await read(base_url)

            watch = self._watches[pool.tier.name] = AbortWatch(read_aborts)
        return watch

    def aborts(self, pool: ReplicaPool, endpoint: Endpoint) -> bool:
        """Whether the replica's engine aborts a request whose client went away (abortwatch.py)."""
        return self.abort_watch(pool).aborts(endpoint.base_url)

    def seen_aborting(self, pool: ReplicaPool, endpoint: Endpoint) -> bool:
        """The replica's engine was seen to abort cancelled requests (not merely assumed to):
        only then is a cancelled loser charged less than a whole call."""
        return self.abort_watch(pool).known(endpoint.base_url) is True

    async def _room_at_home(self, pool: ReplicaPool, key: str, task: str, timeout: float) -> None:
        """Wait (up to ``timeout``) for the task's replica to drop under the load bound rather
        than let the bound move the task (spillwait.py)."""
        loop = asyncio.get_running_loop()
        home, room = pool.preferred(key, loop.time(), task)
        if home is None or room:
            return
        await self._rooms.wait(home, lambda: pool.preferred(key, loop.time(), task)[1], timeout)

    def _guard(self, pool: ReplicaPool) -> ContextGuard:
        guard = self._guards.get(pool.tier.name)
        if guard is None:
            models = getattr(self._transport(pool), "models", None)

            async def fetch(base_url: str) -> Any:
                return await models(base_url) if models is not None else None

            tokenize = getattr(self._transport(pool), "tokenize", None)
            guard = self._guards[pool.tier.name] = ContextGuard(pool.tier.model, fetch, tokenize=tokenize)
        return guard

    async def _send_fitted(
        self,
        pool: ReplicaPool,
        endpoint: Endpoint,
        body: dict[str, Any],
        timeout: float,
        observer: StreamObserver | None = None,
    ) -> dict[str, Any]:
        """Send (streamed when an observer is given) with ``max_tokens`` inside the replica's
        served context (modelwire.py); a 400 for a too-long request is sent once more with the exact
        room the engine reported."""
        guard = self._guard(pool)
        fitted = await guard.fit(endpoint.base_url, body)

        transport = self._transport(pool)

        def send(b: dict[str, Any]) -> Any:
            if observer is not None:
                return transport.stream(endpoint, b, timeout, observer)  # type: ignore[attr-defined]
            return transport.send(endpoint, b, timeout)

        fitted = self._tool_choice.apply(endpoint.base_url, fitted)
        try:
            return await send(fitted)
        except ModelError as e:
            if e.status != 400:
                raise
            again = guard.refit(endpoint.base_url, fitted, str(e)) or self._tool_choice.refused(
                endpoint.base_url, fitted, str(e)
            )
            if again is None:
                raise
            return await send(again)

    def _key(self, pool: ReplicaPool, req: ModelRequest) -> str:
        if pool.tier.adapter:
            # Adapter affinity: every task of a LoRA adapter ranks the replicas alike, so the
            # adapter stays in the GPU slots of its first choices instead of being swapped in
            # everywhere; the load bound spreads a hot adapter down that ranking, and a task that
            # moved stays where its history is cached (pool.last).
            return "adapter:" + pool.tier.model
        if pool.settings.sub_agent_affinity and req.root_id:
            return req.root_id
        # No task id (a one-off call): a random key spreads such calls instead of piling them up.
        return req.task_id or req.session or uuid.uuid4().hex

    async def _attempts(
        self, pool: ReplicaPool, req: ModelRequest, body: dict[str, Any], deadline: float
    ) -> ModelReply:
        loop = asyncio.get_running_loop()
        key = self._key(pool, req)
        tried: list[str] = []
        last: ModelError | None = None
        for attempt in range(self.max_retries + 1):
            left = deadline - loop.time()
            if left <= 0:
                break
            if not attempt and pool.settings.spill_wait_s > 0:
                await self._room_at_home(pool, key, req.task_id or key, min(pool.settings.spill_wait_s, left))
            order = pool.order(key, loop.time(), exclude=tried, task=req.task_id or key)
            self.metrics.replicas.labels(pool.tier.name).set(len(pool.source.endpoints()))
            if not order:
                last = ModelError(f"no serving replica of {pool.tier.name}", retryable=True)
            else:
                if attempt:
                    self.metrics.failovers.labels(pool.tier.name).inc()
                try:
                    hedged = (
                        hedged_stream(self, pool, order, req, body, min(self.timeout, left))
                        if self.stream
                        else self._hedged(pool, order, req, body, min(self.timeout, left))
                    )
                    reply, served = await hedged
                except _Failed as f:
                    last = f.error
                    tried += [r for r in f.replicas if r not in tried]
                    if not f.error.retryable:
                        raise f.error from None
                else:
                    by = next((e for e in order if e.name == served), None)
                    pool.budget.on_call(reply.usage.total, loop.time(), aborting=by is None or self.aborts(pool, by))
                    prev = pool.last.swap(req.task_id or key, served)
                    self.metrics.affinity.labels(
                        pool.tier.name, "first" if prev is None else "hit" if prev == served else "miss"
                    ).inc()
                    return reply
            if attempt < self.max_retries:
                pause = full_jitter(attempt, self.backoff_base, self.backoff_cap, self.rng)
                await asyncio.sleep(max(0.0, min(pause, deadline - loop.time())))
        pool.forget_gone()
        raise last or ModelError(f"model call to {pool.tier.name} had no time left", retryable=True)

    async def _hedged(
        self, pool: ReplicaPool, order: list[Endpoint], req: ModelRequest, body: dict[str, Any], timeout: float
    ) -> tuple[ModelReply, str]:
        """One attempt, with at most one hedge; returns the reply and the replica that served it."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        first = asyncio.create_task(self._call(pool, order[0], req.kind, body, timeout))
        names = {first: order[0].name}
        starts = {first: started}
        pending: set[asyncio.Task[ModelReply]] = {first}
        advance: float | None = None
        cost: float | None = None  # the loser's, once known; else the advance stands
        try:
            delay = self._hedge_delay(pool, req.kind) if len(order) > 1 else None
            if delay is not None:
                # Due at the delay, or when the replica stalls; a denied hedge is asked for again.
                advance = await hedge_due(
                    pool,
                    order[0].name,
                    set(pending),
                    started,
                    delay,
                    timeout,
                    lambda: self.metrics.hedges.labels(pool.tier.name, "denied").inc(),
                )
                if advance is not None:
                    left = timeout - (loop.time() - started)
                    second = asyncio.create_task(self._call(pool, order[1], req.kind, body, max(0.001, left)))
                    names[second] = order[1].name
                    starts[second] = loop.time()
                    pending.add(second)
            hedged = len(names) > 1
            errors: list[ModelError] = []
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    exc = t.exception()
                    if exc is None:
                        reply = t.result()
                        if hedged:
                            self.metrics.hedges.labels(pool.tier.name, "lost" if t is first else "won").inc()
                            loser = next(o for o in names if o is not t)
                            if not loser.done():  # cancelled below: what can it have cost?
                                now = loop.time()
                                ep = order[0] if loser is first else order[1]
                                share = (now - starts[loser]) / max(1e-9, now - starts[t])
                                cost = loser_cost(
                                    reply.usage.prompt_tokens,
                                    reply.usage.completion_tokens,
                                    aborted=self.seen_aborting(pool, ep),
                                    share=share,
                                )
                        return reply, names[t]
                    errors.append(exc if isinstance(exc, ModelError) else ModelError(str(exc)))
            if hedged:
                self.metrics.hedges.labels(pool.tier.name, "failed").inc()
            raise _Failed(errors[0], list(names.values()))
        finally:
            if advance is not None:
                pool.budget.settle(advance, advance if cost is None else cost)
            # The loser (or every call, when the caller was cancelled): cancelling the HTTP request
            # closes its connection, which aborts the sequence on the replica and frees its KV.
            left_over = [t for t in names if not t.done()]
            for t in left_over:
                t.cancel()
            if left_over:
                await asyncio.gather(*left_over, return_exceptions=True)

    def _hedge_delay(self, pool: ReplicaPool, kind: str) -> float | None:
        if not pool.settings.hedging:
            return None
        value = pool.quantile(kind).value()
        if value is not None:
            self.metrics.hedge_threshold.labels(pool.tier.name, kind).set(value)
        return value

    async def _call(
        self,
        pool: ReplicaPool,
        endpoint: Endpoint,
        kind: str,
        body: dict[str, Any],
        timeout: float,
        observer: StreamObserver | None = None,
    ) -> ModelReply:
        loop = asyncio.get_running_loop()
        model, name = pool.tier.name, endpoint.name
        detector = pool.detector(name)
        detector.on_send(loop.time())
        pool.stalls.sent(name, loop.time(), pool.inflight.get(name, 0))
        pool.inflight[name] = pool.inflight.get(name, 0) + 1
        decoding = False
        key = observer  # the caller's observer names the attempt to the overtake watch
        if observer is not None:  # its tokens tell the stall watch that the replica steps
            on_first = observer.on_first
            pool.overtakes.sent(name, observer)

            def first() -> None:
                nonlocal decoding
                decoding = True
                pool.stalls.first_token(name)
                pool.overtakes.first_token(name, key, loop.time())
                on_first()

            observer = StreamObserver(first, observer.on_text, lambda: pool.stalls.progress(name, loop.time()))
        self.metrics.inflight.labels(model, name).set(pool.inflight[name])
        started = loop.time()
        outcome = "error"
        try:
            try:
                with tracing.attempt(name, endpoint.base_url):  # one span per request; a hedge's loser ends as lost
                    raw = await asyncio.wait_for(self._send_fitted(pool, endpoint, body, timeout, observer), timeout)
            except TimeoutError as e:
                raise AttemptTimeout(f"{name} did not answer within {timeout:.1f} s") from e
            reply = parse_chat_completion(raw)
            outcome = "ok"
            detector.on_success(loop.time())
            pool.quantile(kind).add(loop.time() - started)
            self.metrics.latency.labels(model, name, kind).observe(loop.time() - started)
            self.metrics.ejected.labels(model, name).set(0)
            return reply
        except asyncio.CancelledError:
            outcome = "cancelled"  # a hedge loser or a cancelled task: says nothing about the replica
            self.abort_watch(pool).cancelled(endpoint.base_url, loop.time())
            raise
        except ModelError as e:
            outcome = "timeout" if isinstance(e, AttemptTimeout) else "error"
            if e.retryable:  # a 400 is the request's fault, not the replica's
                reason = "timeout" if outcome == "timeout" else str(e.status or "connection")
                self.metrics.errors.labels(model, name, reason).inc()
                if detector.on_failure(loop.time()):
                    self.metrics.ejections.labels(model, name).inc()
                    self.metrics.ejected.labels(model, name).set(1)
            raise
        finally:
            if decoding:
                pool.stalls.finished(name)
            if key is not None:
                pool.overtakes.finished(name, key)
            pool.inflight[name] -= 1
            self._rooms.freed(name)
            self.metrics.inflight.labels(model, name).set(pool.inflight[name])
            self.metrics.calls.labels(model, name, outcome).inc()
