"""The Redis token bucket against a real redis-server, shared by two client instances ("pods")."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry

from agentfleet_runtime.model.client import ModelRequest
from agentfleet_runtime.routing.client import RoutingModelClient
from agentfleet_runtime.routing.metrics import RoutingMetrics
from agentfleet_runtime.routing.ratelimit import RateLimited, RedisRateLimiter, estimate_tokens
from agentfleet_runtime.routing.settings import Endpoint, RateLimitSettings, Tier
from agentfleet_runtime.routing.sources import StaticSource
from agentfleet_sim import FleetThread
from e2e.harness.ports import free_port

pytestmark = pytest.mark.integration


def run(coro: Any, timeout: float = 60) -> Any:
    return asyncio.run(asyncio.wait_for(coro, timeout))


def pods(url: str, settings: RateLimitSettings) -> tuple[list[RedisRateLimiter], list[Any]]:
    """Two limiters on separate connections: what two worker pods hold. Fresh prefix per test."""
    prefix = "af:" + uuid.uuid4().hex[:8]
    # The second "pod" decodes responses, as the worker's own client (store.connect) does.
    conns = [aioredis.Redis.from_url(url), aioredis.Redis.from_url(url, decode_responses=True)]
    return [RedisRateLimiter(c, settings, prefix=prefix) for c in conns], conns


def test_two_pods_share_one_bucket_in_fifo_order_and_fail_clearly_past_the_deadline(redis_url: str) -> None:
    async def body() -> None:
        # 600 tokens/min = 10 tokens/s, a bucket of 600.
        (a, b), conns = pods(redis_url, RateLimitSettings(tokens_per_minute=600, max_wait_seconds=5))
        first = await a.reserve("llama", "", 600)
        assert first.wait_seconds == 0  # a full bucket
        waits = []
        for limiter in (b, a, b):  # alternate pods: one queue, each slot after the previous one
            waits.append((await limiter.reserve("llama", "", 10)).wait_seconds)
        assert waits == sorted(waits) and 0.9 < waits[0] < 1.1 and 2.8 < waits[2] < 3.1
        with pytest.raises(RateLimited) as err:
            await b.reserve("llama", "", 30)  # 3 s more: slot at ~6 s > maxWaitSeconds 5
        assert err.value.scope == "model" and err.value.status == 429
        assert "maxWaitSeconds" in str(err.value) and "600 tokens/min" in str(err.value)
        # the refused call reserved nothing: a call that fits still gets the next slot
        assert 3.8 < (await a.reserve("llama", "", 10)).wait_seconds < 4.1
        for c in conns:
            await c.aclose()

    run(body())


def test_tenant_bucket_binds_before_the_model_bucket(redis_url: str) -> None:
    async def body() -> None:
        (a, b), conns = pods(
            redis_url, RateLimitSettings(tokens_per_minute=60_000, per_tenant_tokens_per_minute=600, max_wait_seconds=2)
        )
        await a.reserve("llama", "acme", 600)
        with pytest.raises(RateLimited) as err:
            await b.reserve("llama", "acme", 100)
        assert err.value.scope == "tenant" and "tenant:acme" in str(err.value)
        assert (await b.reserve("llama", "globex", 600)).wait_seconds == 0  # other tenants are not held up
        for c in conns:
            await c.aclose()

    run(body())


def test_settling_gives_unused_tokens_back(redis_url: str) -> None:
    async def body() -> None:
        (a, b), conns = pods(redis_url, RateLimitSettings(tokens_per_minute=600, max_wait_seconds=1))
        big = await a.reserve("llama", "", 600)
        await a.settle(big, 100)  # the call used far less than estimated
        assert (await b.reserve("llama", "", 400)).wait_seconds == 0
        for c in conns:
            await c.aclose()

    run(body())


def test_two_routing_clients_over_http_stay_within_the_shared_rate(fleet4: FleetThread, redis_url: str) -> None:
    """Two pods fire calls at once; the tokens admitted over the run never exceed one bucket plus
    the refill, calls past the first bucket wait, and the rest fail with RateLimited."""
    tpm, max_wait = 3000, 2.0  # 50 tokens/s; a bucket of 3000

    async def body() -> None:
        limiters, conns = pods(redis_url, RateLimitSettings(tokens_per_minute=tpm, max_wait_seconds=max_wait))
        metrics = RoutingMetrics(CollectorRegistry())
        src = StaticSource([Endpoint(h.name, h.base_url) for h in fleet4.replicas])
        clients = [
            RoutingModelClient(
                (Tier("llama", "llama-70b"), src), rate_limiter=lim, metrics=metrics, max_output_tokens=4
            )
            for lim in limiters
        ]
        msgs = [{"role": "user", "content": "summarise the findings so far " * 30}]
        estimate = estimate_tokens(msgs, [], 4)
        started = time.monotonic()

        async def call(i: int) -> str:
            try:
                await clients[i % 2].complete(ModelRequest(messages=msgs, task_id=f"t{i}"))
                return "ok"
            except RateLimited:
                return "limited"

        n = int(tpm / estimate) + 40  # a bucket's worth plus more than 2 s of refill
        outcomes = await asyncio.gather(*(call(i) for i in range(n)))
        elapsed = time.monotonic() - started
        ok = outcomes.count("ok")
        assert outcomes.count("limited") > 0
        # Admitted estimates fit one bucket plus the refill over the wait window (+1 call of slack).
        assert ok * estimate <= tpm + (tpm / 60) * (max_wait + 0.5) + estimate
        assert ok * estimate >= tpm  # and the whole bucket was usable
        waited = metrics.registry.get_sample_value("agentfleet_routing_ratelimit_wait_seconds_sum", {"model": "llama"})
        assert waited and waited > 0 and elapsed < 30
        rejected = metrics.registry.get_sample_value(
            "agentfleet_routing_ratelimit_rejected_total", {"model": "llama", "scope": "model"}
        )
        assert rejected == outcomes.count("limited")
        for c in clients:
            await c.close()
        for conn in conns:
            await conn.aclose()

    run(body())


def test_an_unreachable_redis_fails_open() -> None:
    async def body() -> None:
        conn = aioredis.Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
        limiter = RedisRateLimiter(conn, RateLimitSettings(tokens_per_minute=10))
        reservation = await limiter.reserve("llama", "acme", 1000)
        assert reservation.wait_seconds == 0 and reservation.keys == ()
        await limiter.settle(reservation, 5)
        await conn.aclose()

    run(body())
