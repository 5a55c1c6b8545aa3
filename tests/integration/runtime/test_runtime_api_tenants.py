"""The task API with several tenants, against a real Redis: each tenant sees and touches only its
own tasks, idempotency keys and sessions; per-tenant admission limits answer 429 with
Retry-After; event streams are capped per pod and per tenant below the Redis pool; malformed
input is a 400 that names the field. Every test here fails on c4625b5 (see docs/security.md)."""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
import pytest
from agentfleet_contract.runtime_config import RuntimeConfig
from aiohttp import web
from runtime_helpers import arun, environment, free_port, running_worker

from agentfleet_runtime.core.tenants import token_line
from agentfleet_runtime.server.api import TaskAPI

pytestmark = pytest.mark.integration
TOKENS = {"acme": "tok-acme-1", "globex": "tok-globex-1"}
REVIEWERS = {"acme": "tok-acme-review", "globex": "tok-globex-review"}  # scope approver: sessions "<tenant>:review"


@asynccontextmanager
async def tenant_api(
    config: RuntimeConfig, tmp_path, api: dict[str, Any] | None = None, tokens: dict[str, str] | None = None
):
    """The API on a free port with a hashed token file; yields (base url, {tenant: session}), and
    each tenant's reviewer (a token of scope approver) as the session ``<tenant>:review``."""
    tokens = tokens or TOKENS
    reviewers = {t: tok for t, tok in REVIEWERS.items() if t in tokens}
    path = tmp_path / "tokens"
    lines = [token_line(t, tok) for t, tok in tokens.items()]
    lines += [token_line(t, tok) + " approver" for t, tok in reviewers.items()]
    path.write_text("".join(line + "\n" for line in lines))
    doc = config.model_dump(by_alias=True, mode="json")
    doc["api"] = {**doc["api"], "tokensFile": str(path), **(api or {})}
    server = TaskAPI(RuntimeConfig.model_validate(doc))
    runner = web.AppRunner(server.app(), shutdown_timeout=1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    async with AsyncExitStack() as stack:
        sessions = {
            t: await stack.enter_async_context(
                aiohttp.ClientSession(base_url=base, headers={"Authorization": f"Bearer {tok}"})
            )
            for t, tok in [*tokens.items(), *((f"{t}:review", tok) for t, tok in reviewers.items())]
        }
        try:
            yield base, sessions
        finally:
            server.closing = True
            await runner.cleanup()


def test_a_tenant_reads_cancels_and_replays_only_its_own_tasks(redis_server, fleet, tmp_path):
    # The probe of issue 39: with token B, read A's goal and metadata, cancel A's task, and reuse
    # A's Idempotency-Key to learn A's task id. On c4625b5 all three worked.
    async def body():
        async with environment(redis_server.url, fleet) as env, tenant_api(env.config, tmp_path) as (_, s):
            a, b = s["acme"], s["globex"]
            r = await a.post(
                "/v1/tasks",
                json={"goal": "acme's secret plan", "metadata": {"deal": "x"}},
                headers={"Idempotency-Key": "k1"},
            )
            tid = (await r.json())["id"]
            assert r.status == 201
            assert (await b.get(f"/v1/tasks/{tid}")).status == 404
            assert (await b.get(f"/v1/tasks/{tid}/events")).status == 404
            assert (await b.post(f"/v1/tasks/{tid}/cancel")).status == 404
            again = await b.post(
                "/v1/tasks",
                json={"goal": "acme's secret plan", "metadata": {"deal": "x"}},
                headers={"Idempotency-Key": "k1"},
            )
            assert again.status == 201 and (await again.json())["id"] != tid
            mine = await (await a.get(f"/v1/tasks/{tid}")).json()
            assert mine["status"] == "queued" and mine["goal"] == "acme's secret plan"
            assert (
                await a.post(
                    "/v1/tasks",
                    json={"goal": "acme's secret plan", "metadata": {"deal": "x"}},
                    headers={"Idempotency-Key": "k1"},
                )
            ).status == 200
            # The body cannot choose the tenant.
            r = await b.post("/v1/tasks", json={"goal": "g", "tenant": "acme"})
            assert r.status == 400 and "bearer token" in (await r.json())["error"]

    arun(body())


def test_dead_letters_are_per_tenant(redis_server, fleet, tmp_path):
    async def body():
        async with (
            environment(redis_server.url, fleet) as env,
            tenant_api(env.config, tmp_path) as (_, s),
            running_worker(env.config),
        ):
            r = await s["acme"].post("/v1/tasks", json={"goal": "doomed #fail=1000"})
            tid = (await r.json())["id"]
            await env.wait(tid, 30)
            theirs = (await (await s["globex"].get("/v1/deadletters")).json())["items"]
            mine = (await (await s["acme"].get("/v1/deadletters")).json())["items"]
        assert [i["task"] for i in mine] == [tid] and theirs == []

    arun(body())


def test_sessions_are_per_tenant(redis_server, fleet, tmp_path):
    # Naming another tenant's session reaches none of its history (which the loop quotes in the
    # task's user message); the same tenant's next task does see it.
    async def body():
        async with (
            environment(redis_server.url, fleet) as env,
            tenant_api(env.config, tmp_path) as (_, s),
            running_worker(env.config),
        ):
            env.model.record = True
            first = (
                await (await s["acme"].post("/v1/tasks", json={"goal": "first #answer=blue", "session": "s1"})).json()
            )["id"]
            await env.wait(first)
            other = (await (await s["globex"].post("/v1/tasks", json={"goal": "spy", "session": "s1"})).json())["id"]
            await env.wait(other)
            spy_prompt = " ".join(m["content"] or "" for m in env.model.requests[-1]["messages"][:2])
            own = (await (await s["acme"].post("/v1/tasks", json={"goal": "second", "session": "s1"})).json())["id"]
            await env.wait(own)
            own_prompt = env.model.requests[-1]["messages"][1]["content"]
        assert "blue" not in spy_prompt and '"answer": "blue' in own_prompt

    arun(body())


def in_flight_refusals(metrics: str) -> float:
    """agentfleet_tenant_admissions_total{outcome="in_flight_limit",tenant="acme"} in a /metrics page."""
    prefix = 'agentfleet_tenant_admissions_total{outcome="in_flight_limit",tenant="acme"} '
    return next((float(line[len(prefix) :]) for line in metrics.splitlines() if line.startswith(prefix)), 0.0)


def test_tasks_in_flight_per_tenant_are_refused_with_429(redis_server, fleet, tmp_path):
    async def body():
        limits = {"tenantLimits": {"maxTasksInFlight": 2}, "metricsAccess": "Token"}  # names, to a token
        async with environment(redis_server.url, fleet) as env, tenant_api(env.config, tmp_path, limits) as (base, s):
            a, b = s["acme"], s["globex"]
            ids = [
                (
                    await (
                        await a.post("/v1/tasks", json={"goal": f"g{i}"}, headers={"Idempotency-Key": f"k{i}"})
                    ).json()
                )["id"]
                for i in range(2)
            ]
            refused_before = in_flight_refusals(await (await a.get(base + "/metrics")).text())
            r = await a.post("/v1/tasks", json={"goal": "one too many"})
            assert (
                r.status == 429
                and r.headers["Retry-After"] == "5"
                and "maxTasksInFlight = 2" in (await r.json())["error"]
            )
            # A retry of an admitted submission is not a new task; another tenant is not affected.
            assert (await a.post("/v1/tasks", json={"goal": "g0"}, headers={"Idempotency-Key": "k0"})).status == 200
            assert (await b.post("/v1/tasks", json={"goal": "globex"})).status == 201
            # A task that ends frees its place.
            assert (await a.post(f"/v1/tasks/{ids[0]}/cancel")).status == 202
            assert (await a.post("/v1/tasks", json={"goal": "now it fits"})).status == 201
            metrics = await (await a.get(base + "/metrics")).text()
        # The registry is the process's: other modules' refusals of "acme" on this worker count too.
        assert in_flight_refusals(metrics) == refused_before + 1

    arun(body())


def test_spend_per_day_counts_sub_agents_and_refuses_with_429(redis_server, fleet, tmp_path):
    # Priced so the scripted model's few hundred tokens cost about 1 (currency units) per task tree.
    pricing = {"inputPerMillionTokens": "2000", "outputPerMillionTokens": "2000", "currency": "EUR"}

    async def body():
        # Each task reserves its maxCost (2.5) at admission: the first fits under 3, the next does
        # not once the first tree's real cost (about 1) is spent.
        limits = {"tenantLimits": {"maxSpendPerDay": "3"}, "metricsAccess": "Token"}
        cap = {"maxCost": "2.5"}
        async with (
            environment(redis_server.url, fleet, pricing=pricing) as env,
            tenant_api(env.config, tmp_path, limits) as (base, s),
            running_worker(env.config),
        ):
            a = s["acme"]
            tid = (await (await a.post("/v1/tasks", json={"goal": "research #spawn=2", "budgets": cap})).json())["id"]
            await env.wait(tid, 30)
            view = await (await a.get(f"/v1/tasks/{tid}")).json()
            spent = await env.store.tenant_spent("acme")
            r = await a.post("/v1/tasks", json={"goal": "more", "budgets": cap})
            left = 86400 - time.time() % 86400
            other = await s["globex"].post("/v1/tasks", json={"goal": "globex is fine", "budgets": cap})
            metrics = await (await a.get(base + "/metrics")).text()
        # What the tenant was charged is what the fleet recorded for the tree, sub-agents included.
        assert len(view["children"]) == 2 and spent == round(float(view["treeUsage"]["cost"]) * 1e9) > 0
        assert (
            r.status == 429 and "maxSpendPerDay = 3" in (await r.json())["error"] and "EUR" in (await r.json())["error"]
        )
        assert abs(int(r.headers["Retry-After"]) - left) < 5 and other.status == 201
        assert 'agentfleet_tenant_cost_total{currency="EUR",tenant="acme"}' in metrics

    arun(body())


def test_event_streams_are_capped_per_tenant_and_per_pod(redis_server, fleet, tmp_path):
    async def body():
        caps = {"maxStreams": 3, "tenantLimits": {"maxStreams": 2}}
        async with environment(redis_server.url, fleet) as env, tenant_api(env.config, tmp_path, caps) as (base, s):
            a, b = s["acme"], s["globex"]
            ta = (await (await a.post("/v1/tasks", json={"goal": "never runs"})).json())["id"]
            tb = (await (await b.post("/v1/tasks", json={"goal": "never runs"})).json())["id"]
            open_a = [await a.get(f"/v1/tasks/{ta}/events") for _ in range(2)]
            third = await a.get(f"/v1/tasks/{ta}/events")
            open_b = await b.get(f"/v1/tasks/{tb}/events")
            second_b = await b.get(f"/v1/tasks/{tb}/events")
            assert [r.status for r in open_a] == [200, 200] and open_b.status == 200
            assert third.status == 429 and "your tenant may hold at most 2" in (await third.json())["error"]
            assert second_b.status == 429 and "this API pod serves at most 3" in (await second_b.json())["error"]
            assert third.headers["Retry-After"] == "5"
            t0 = time.monotonic()
            assert (await a.get(base + "/readyz")).status == 200 and (await a.get(f"/v1/tasks/{ta}")).status == 200
            assert time.monotonic() - t0 < 1.0
            open_a[0].close()
            for _ in range(50):  # the server sees the close at its next write or read
                r = await a.get(f"/v1/tasks/{ta}/events")
                if r.status == 200:
                    break
                await asyncio.sleep(0.1)
            assert r.status == 200
            for x in (*open_a, open_b, r):
                x.close()

    arun(body())


@pytest.mark.parametrize(
    "raw, headers, query, field",
    [
        (b'{"goal": "g", "budgets": {"timeoutSeconds": NaN}}', {}, "", "budgets.timeoutSeconds"),
        (b'{"goal": "g", "budgets": {"maxTokens": 1e999}}', {}, "", "budgets.maxTokens"),
        (b'{"goal": "' + b"\\ud83d" + b'"}', {}, "", "lone surrogate"),
        (b'{"goal": "g", "metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", {}, "", "deeper than 32"),
        (None, {"Last-Event-ID": "not-an-id"}, "", "Last-Event-ID must be an event id"),
        (None, {}, "?after=$", "after must be an event id"),
    ],
)
def test_malformed_input_is_a_400_naming_the_field(redis_server, fleet, tmp_path, raw, headers, query, field):
    # On c4625b5 each of these answered 500 (or, for NaN, was accepted and dead-lettered).
    async def body():
        big = {"maxRequestBytes": 1_048_576}
        async with environment(redis_server.url, fleet) as env, tenant_api(env.config, tmp_path, big) as (_, s):
            a = s["acme"]
            if raw is not None:
                r = await a.post("/v1/tasks", data=raw, headers={"Content-Type": "application/json"})
            else:
                tid = (await (await a.post("/v1/tasks", json={"goal": "g"})).json())["id"]
                r = await a.get(f"/v1/tasks/{tid}/events{query}", headers=headers)
            return r.status, await r.json()

    status, answer = arun(body())
    assert status == 400 and field in answer["error"], answer


def test_the_openapi_document_is_served_without_auth(redis_server, fleet, tmp_path):
    async def body():
        async with environment(redis_server.url, fleet) as env, tenant_api(env.config, tmp_path) as (base, _):
            async with aiohttp.ClientSession() as anon:
                r = await anon.get(base + "/v1/openapi.json")
                return r.status, json.loads(await r.text())

    status, doc = arun(body())
    assert status == 200 and doc["openapi"].startswith("3.") and "/v1/tasks/{id}/events" in doc["paths"]


def token_limited(config: RuntimeConfig, tokens_per_minute: int) -> RuntimeConfig:
    """The config routed through the routing client (static replica: the scripted model) with a
    per-tenant token bucket, and 8 output tokens a call so a call's estimate is mostly its prompt."""
    doc = config.model_dump(by_alias=True, mode="json")
    doc["model"]["maxOutputTokens"] = 8
    doc["modelRouting"] = {
        "primary": {"modelReplicaSet": "scripted-set", "model": "scripted", "endpoints": [config.model.base_url]},
        "rateLimit": {"perTenantTokensPerMinute": tokens_per_minute},
    }
    return RuntimeConfig.model_validate(doc)


def test_tokens_a_tenant_spent_in_the_last_minute_refuse_its_next_submission(redis_server, fleet, tmp_path):
    # A worker runs one task of acme's whose one model call takes ~5,000 of its 6,000 tokens a
    # minute (the bucket drips back 100 a second). The same goal again needs ~5,000 more: 429
    # with Retry-After, counted as rate_limit. A small goal still fits; globex has its own bucket.
    # On be7b847 tokens per minute were enforced per model call only: every submission was a 201.
    goal = "summarise this report: " + "lorem ipsum " * 1650  # ~20,000 characters, ~5,000 tokens

    async def body():
        async with environment(redis_server.url, fleet) as env:
            config = token_limited(env.config, 6000)
            named = {"metricsAccess": "Token"}
            async with tenant_api(config, tmp_path, named) as (base, s), running_worker(config):
                a, b = s["acme"], s["globex"]
                first = await a.post("/v1/tasks", json={"goal": goal})
                assert first.status == 201
                tid = (await first.json())["id"]
                assert (await env.wait(tid, 30))[tid]["reason"] == "final_answer"
                again = await a.post("/v1/tasks", json={"goal": goal})
                small = await a.post("/v1/tasks", json={"goal": "a short one"})
                other = await b.post("/v1/tasks", json={"goal": goal})
                metrics = await (await a.get(base + "/metrics")).text()
                answer = await again.json()
                return again.status, again.headers.get("Retry-After"), answer, small.status, other.status, metrics

    status, retry_after, answer, small, other, metrics = arun(body())
    assert status == 429 and answer["limit"] == "rate_limit", answer
    assert "perTenantTokensPerMinute" in answer["error"] and "scripted-set" in answer["error"]
    # The bucket needs ~(5,050 - (6,000 - ~5,060 + the drip since)) / 100 tokens a second: ~10-45 s.
    assert 5 <= int(retry_after) <= 50, retry_after
    assert small == 201 and other == 201
    assert 'agentfleet_tenant_admissions_total{outcome="rate_limit",tenant="acme"} 1.0' in metrics


def test_a_full_token_bucket_refuses_every_concurrent_submission_until_the_window_rolls(redis_server, fleet, tmp_path):
    # acme's calls took its whole minute (charged through the workers' own limiter, as a call
    # does). Ten submissions at once are all refused, atomically with the write of each, and
    # globex's ten at once are all admitted; after Retry-After the bucket has room again.
    async def body():
        from agentfleet_runtime.worker.lifecycle import model_client

        async with environment(redis_server.url, fleet) as env:
            config = token_limited(env.config, 6000)
            client = model_client(config, env.store.r)
            try:
                await client.limiter.reserve("scripted-set", "acme", 6000)
            finally:
                await client.close()
            async with tenant_api(config, tmp_path) as (_, s):
                a, b = s["acme"], s["globex"]
                refused = await asyncio.gather(*(a.post("/v1/tasks", json={"goal": f"g{i}"}) for i in range(10)))
                admitted = await asyncio.gather(*(b.post("/v1/tasks", json={"goal": f"g{i}"}) for i in range(10)))
                assert [r.status for r in refused] == [429] * 10
                assert [r.status for r in admitted] == [201] * 10
                waits = {r.headers["Retry-After"] for r in refused}
                # ~60 tokens (system prompt, goal, 8 output) at 100 a second: under one second.
                assert waits == {"1"}, waits
                await asyncio.sleep(1.0)
                rolled = await a.post("/v1/tasks", json={"goal": "g10"})
                assert rolled.status == 201, await rolled.text()

    arun(body())
