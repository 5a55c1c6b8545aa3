"""A2A agents as tools (spec.tools[].type A2A, tools/a2a.py) over real connections: a fleet's worker
asking a second fleet's task API over A2A (real Redis, real workers, real task API), the same tool
against an agent built with the official a2a-sdk (code nobody here wrote), the egress guard on the
card and on every URL the card names, and a deadline that cancels the remote task (docs/a2a.md)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from runtime_helpers import arun, environment, running_worker
from test_runtime_api_tenants import TOKENS, tenant_api

from agentfleet_runtime.core.budget import NANOS
from agentfleet_runtime.core.citations import parse_citations
from agentfleet_runtime.model.spend import ReportedSpend
from agentfleet_runtime.store.tasks import TaskStore
from agentfleet_runtime.tools.a2a import A2ATool
from agentfleet_runtime.tools.base import ToolContext, ToolError
from agentfleet_runtime.tools.http import denied_networks
from e2e.harness.a2a_reference import ANSWER, CANCELLED_USAGE, USAGE, sdk_agent
from e2e.harness.ports import free_port

pytestmark = pytest.mark.integration

PRICED = {"inputPerMillionTokens": "10", "outputPerMillionTokens": "20", "currency": "USD"}


def ask_goal(remote_goal: str, tool: str = "ask_docs") -> str:
    """A caller goal whose scripted model calls ``tool`` once with ``remote_goal``, then answers
    without naming any source (the scripted model's default answer would quote the observation)."""
    args = json.dumps({"message": remote_goal}, separators=(",", ":"))
    return f"ask #steps=2 #tool={tool} #args={args} #answer=It_is_so."


def a2a_tool_spec(card_url: str, name: str = "ask_docs", **a2a: Any) -> dict[str, Any]:
    return {"name": name, "type": "A2A", "timeoutSeconds": 60, "a2a": {"cardUrl": card_url, **a2a}}


@asynccontextmanager
async def caller(redis_url: str, fleet: str, tmp_path, tools: list[dict[str, Any]], headers: dict[str, str]):
    """Fleet A: a scripted model and a worker whose A2A tools read their headers as the operator mounts them."""
    hdir = tmp_path / f"{fleet}-headers"
    hdir.mkdir()
    for t in tools:
        if headers:
            (hdir / t["name"]).write_text(json.dumps(headers))
            t["a2a"]["headersSecretRef"] = {"name": "b-token", "key": "headers"}
    async with environment(redis_url, fleet, tools=tools, toolHeadersDir=str(hdir)) as env, running_worker(env.config):
        yield env


async def task_view(store: TaskStore, tid: str) -> dict[str, Any]:
    rec, raw = await store.get(tid)  # type: ignore[misc]
    return {"rec": rec, "raw": raw, "steps": await store.steps(tid)}


def test_a_fleet_delegates_to_another_fleet_over_a2a_and_cites_its_artifact(redis_server, tmp_path):
    fleet_a, fleet_b = "ta" + uuid.uuid4().hex[:9], "tb" + uuid.uuid4().hex[:9]

    async def body():
        async with (
            environment(redis_server.url, fleet_b, a2a={}, pricing=PRICED) as b,
            tenant_api(b.config, tmp_path) as (base, http),
            running_worker(b.config),
        ):
            tool = a2a_tool_spec(f"{base}/.well-known/agent-card.json", budgets={"maxSteps": 3, "maxCost": "0.5"})
            bearer = {"Authorization": f"Bearer {TOKENS['acme']}"}
            async with caller(redis_server.url, fleet_a, tmp_path, [tool], bearer) as a:
                tid = await a.submit(ask_goal("what_colour_#answer=blue[source:colours.html]"))
                ended = (await a.wait(tid, timeout=60))[tid]
                assert ended["status"] == "done", ended
                seen = await task_view(a.store, tid)
                obs = seen["steps"][0].observations[0]
                assert obs.ok, obs
                first = obs.output.split("\n", 1)[0]
                assert first.startswith("A2A source: a2a:ask_docs/"), obs.output
                source = first.removeprefix("A2A source: ")
                remote_tid = source.split("/")[1]
                assert "> blue[source:colours.html]" in obs.output and "colours.html" in obs.output
                # The caller's answer cites the remote's artifact, though its model never wrote it.
                assert source in parse_citations(ended["answer"]), ended["answer"]
                assert source == f"a2a:ask_docs/{remote_tid}/{remote_tid}-answer"
                # The remote task is fleet B's, of the tenant the token names, asked with the budgets
                # the author set (the caller had room for them) and the caller's time.
                view = await (await http["acme"].get(f"/v1/tasks/{remote_tid}")).json()
                assert view["status"] == "done" and view["answer"] == "blue[source:colours.html]", view
                assert view["budgets"]["maxSteps"] == 3 and view["budgets"]["maxCost"] == "0.5", view
                assert view["budgets"]["timeoutSeconds"] <= 60, view
                # Its cost, where fleet B reports it on the A2A Task, is in the caller's: the caller's
                # own model is unpriced, so its cost is the remote's exactly (0 while B reports none).
                got = await (
                    await http["acme"].post("/a2a", json=rpc("GetTask", {"id": remote_tid}), headers=V1)
                ).json()
                reported = (got["result"].get("metadata") or {}).get("agentfleet.io/usage")
                remote_cost = Decimal(reported["cost"]) if reported else Decimal(0)
                assert Decimal(seen["rec"].cost_nanos) / NANOS == remote_cost, (seen["rec"].cost_nanos, reported)
                assert seen["rec"].cost_nanos == 0 or Decimal(view["cost"]) == remote_cost
                # A second call of the same task shares the remote session (one contextId per caller task).
                assert view["session"].startswith("af-")

    arun(body(), timeout=120)


V1 = {"A2A-Version": "1.0"}


def rpc(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "poll"])
def test_the_tool_against_an_a2a_sdk_agent_cites_it_and_charges_its_reported_cost(redis_server, tmp_path, streaming):
    fleet_a = "ta" + uuid.uuid4().hex[:9]

    async def body():
        async with sdk_agent(streaming=streaming) as (card_url, seen):
            tool = a2a_tool_spec(card_url, budgets={"maxTokens": 5000, "maxCost": "0.05"})
            async with caller(redis_server.url, fleet_a, tmp_path, [tool], {"Authorization": "Bearer sdk-token"}) as a:
                tid = await a.submit(ask_goal("page_size?"), maxCost="0.04", maxTokens=3000)
                ended = (await a.wait(tid, timeout=60))[tid]
                assert ended["status"] == "done", ended
                seen_task = await task_view(a.store, tid)
                obs = seen_task["steps"][0].observations[0]
                assert obs.ok, obs.output
                source = obs.output.split("\n", 1)[0].removeprefix("A2A source: ")
                assert source.startswith("a2a:ask_docs/") and source.endswith("/sdk-answer"), obs.output
                assert source in parse_citations(ended["answer"]), ended["answer"]
                assert f"> {ANSWER}" in obs.output and "own sources: sdk-guide.html" in obs.output
                # The SDK agent saw our message id, a context id of the caller's task, the budgets
                # lowered to the caller's (maxCost 0.04 < 0.05, maxTokens 3000 < 5000) and the header.
                [msg] = seen.messages
                assert msg["messageId"].startswith("af-") and msg["contextId"].startswith("af-"), msg
                budgets = msg["metadata"]["budgets"]
                assert budgets["maxTokens"] <= 3000 and Decimal(budgets["maxCost"]) <= Decimal("0.04"), budgets
                assert seen.authorization == ["Bearer sdk-token"]
                # Its reported cost is the caller task's (its own model is unpriced), its tree's and the
                # tenant's day's; its tokens count in the tree's.
                rec, raw = seen_task["rec"], seen_task["raw"]
                assert Decimal(rec.cost_nanos) / NANOS == Decimal(USAGE["cost"]), rec.cost_nanos
                assert int(raw["tree_cost_nanos"]) == rec.cost_nanos == int(raw["calls_cost_nanos"])
                own = sum(s.usage.total for s in seen_task["steps"])
                assert int(raw["tree_tokens"]) == own + USAGE["totalTokens"]
                # The remote's updates are the caller task's progress events (a stream's working update
                # with its text; a polled state change).
                progress = [e for _, e in await a.store.events(tid) if e["type"] == "tool_progress"]
                assert progress and all(e["tool"] == "ask_docs" and e["step"] == 0 for e in progress), progress
                if streaming:
                    assert {"state": "TASK_STATE_WORKING", "text": "looking it up"}.items() <= progress[0].items()

    arun(body(), timeout=120)


def test_a_remote_in_another_currency_is_not_charged(redis_server, tmp_path):
    fleet_a = "ta" + uuid.uuid4().hex[:9]

    async def body():
        async with sdk_agent(usage={"totalTokens": 10, "cost": "3", "currency": "EUR"}) as (card_url, _):
            async with caller(redis_server.url, fleet_a, tmp_path, [a2a_tool_spec(card_url)], {}) as a:
                tid = await a.submit(ask_goal("page_size?"))
                assert (await a.wait(tid, timeout=60))[tid]["status"] == "done"
                seen = await task_view(a.store, tid)
                assert seen["rec"].cost_nanos == 0
                assert "3 EUR, not this fleet's USD: not charged" in seen["steps"][0].observations[0].output

    arun(body(), timeout=120)


# -- the tool alone, against real servers ----------------------------------------------------------
class Ctx:
    """A ToolContext for a call of a task that is stored (the ledger reads and charges it)."""

    @staticmethod
    async def of(store: TaskStore, config: Any, seconds: float = 60) -> ToolContext:
        from runtime_helpers import submit

        tid = await submit(store, config, "caller")
        rec, _ = await store.get(tid)  # type: ignore[misc]
        return ToolContext(task=rec, step=0, call_index=0, deadline=time.time() + seconds)


@asynccontextmanager
async def counting_server(host: str = "127.0.0.1", card: dict[str, Any] | None = None):
    """A plain HTTP server that counts the connections it gets, and serves ``card`` at any path."""
    hits: list[str] = []

    async def any_path(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.json_response(card or {})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", any_path)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, host, port).start()
    try:
        yield f"http://{host}:{port}", hits
    finally:
        await runner.cleanup()


def test_egress_the_card_and_every_url_it_names_are_checked_before_any_connection(redis_server, fleet):
    async def body():
        async with environment(redis_server.url, fleet) as env:
            ctx = await Ctx.of(env.store, env.config)
            denied = denied_networks({"AGENTFLEET_EGRESS_DENY": "127.0.0.2/32"})
            # The card on a metadata address: refused, nothing connected.
            tool = A2ATool("ask", "http://169.254.169.254/.well-known/agent-card.json", denied=denied)
            with pytest.raises(ToolError, match="may not reach 169.254.169.254"):
                await tool.run({"message": "hi"}, ctx)
            async with counting_server("127.0.0.2") as (forbidden, forbidden_hits):
                # A card (on an allowed address) naming a metadata address or a denied one as its endpoint.
                for endpoint in ["http://169.254.169.254/a2a", f"{forbidden}/a2a"]:
                    card = {
                        "name": "evil",
                        "supportedInterfaces": [
                            {"url": endpoint, "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
                        ],
                        "capabilities": {"streaming": True},
                    }
                    async with counting_server(card=card) as (allowed, card_hits):
                        tool = A2ATool("ask", f"{allowed}/.well-known/agent-card.json", denied=denied)
                        try:
                            with pytest.raises(
                                ToolError, match=r"may not reach \S+ \(the agent card's JSON-RPC endpoint\)"
                            ):
                                await tool.run({"message": "hi"}, ctx)
                        finally:
                            await tool.close()
                        assert card_hits == ["/.well-known/agent-card.json"]
                # The card itself on the denied address: refused before a connection.
                tool = A2ATool("ask", f"{forbidden}/.well-known/agent-card.json", denied=denied)
                with pytest.raises(ToolError, match="may not reach 127.0.0.2"):
                    await tool.run({"message": "hi"}, ctx)
                await tool.close()
                assert forbidden_hits == []
            # A name is checked once resolved: localhost resolves to 127.0.0.1, denied here.
            async with counting_server() as (local, local_hits):
                port = local.rsplit(":", 1)[1]
                tool = A2ATool(
                    "ask",
                    f"http://localhost:{port}/.well-known/agent-card.json",
                    denied=denied_networks({"AGENTFLEET_EGRESS_DENY": "127.0.0.0/8,::1/128"}),
                )
                with pytest.raises(ToolError, match="resolves only to addresses tools may not reach"):
                    await tool.run({"message": "hi"}, ctx)
                await tool.close()
                assert local_hits == []

    arun(body(), timeout=60)


def test_a_redirect_is_not_followed_and_a_card_too_large_is_not_read(redis_server, fleet):
    async def body():
        async def redirect(request: web.Request) -> web.Response:
            raise web.HTTPFound("http://169.254.169.254/latest/meta-data/")

        async def huge(request: web.Request) -> web.Response:
            return web.json_response({"name": "x" * 5000})

        app = web.Application()
        app.router.add_get("/redirect", redirect)
        app.router.add_get("/huge", huge)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with environment(redis_server.url, fleet) as env:
                ctx = await Ctx.of(env.store, env.config)
                tool = A2ATool("ask", f"http://127.0.0.1:{port}/redirect")
                with pytest.raises(ToolError, match="redirect; redirects are not followed"):
                    await tool.run({"message": "hi"}, ctx)
                await tool.close()
                tool = A2ATool("ask", f"http://127.0.0.1:{port}/huge", max_response_bytes=1024)
                with pytest.raises(ToolError, match="larger than 1024 bytes"):
                    await tool.run({"message": "hi"}, ctx)
                await tool.close()
        finally:
            await runner.cleanup()

    arun(body(), timeout=60)


@pytest.mark.parametrize("streaming", [True, False], ids=["stream", "poll"])
def test_at_the_deadline_the_remote_task_is_cancelled(redis_server, fleet, streaming):
    async def body():
        async with sdk_agent(streaming=streaming) as (card_url, seen), environment(redis_server.url, fleet) as env:
            ctx = await Ctx.of(env.store, env.config)
            ledger = ReportedSpend(env.store.r, env.store.keys, "USD")
            tool = A2ATool("ask", card_url, timeout=3.0, ledger=ledger)
            t0 = time.monotonic()
            try:
                with pytest.raises(ToolError) as e:
                    await tool.run({"message": "take your time #slow"}, ctx)
            finally:
                await tool.close()
            assert time.monotonic() - t0 < 3.0  # within the ToolBox's own limit
            assert "timed out" in str(e.value) and "was cancelled (CancelTask)" in str(e.value)
            # The SDK agent was asked to cancel the task it was working on.
            for _ in range(50):
                if seen.cancelled:
                    break
                await asyncio.sleep(0.05)
            assert len(seen.cancelled) == 1 and seen.cancelled[0] in str(e.value)
            # What the cancelled task reports it spent is charged to the caller all the same.
            rec, _ = await env.store.get(ctx.task.id)  # type: ignore[misc]
            assert Decimal(rec.cost_nanos) / NANOS == Decimal(CANCELLED_USAGE["cost"]), rec.cost_nanos

    arun(body(), timeout=60)


def test_the_credential_goes_to_the_cards_host_only(redis_server, fleet):
    async def body():
        async with environment(redis_server.url, fleet) as env, counting_server() as (endpoint, endpoint_hits):
            ctx = await Ctx.of(env.store, env.config)
            other_host = endpoint.replace("127.0.0.1", "localhost")
            card = {
                "name": "elsewhere",
                "supportedInterfaces": [
                    {"url": f"{other_host}/a2a", "protocolBinding": "JSONRPC", "protocolVersion": "1.0"}
                ],
                "capabilities": {"streaming": False},
            }
            async with counting_server(card=card) as (card_base, _):
                tool = A2ATool("ask", f"{card_base}/.well-known/agent-card.json", headers={"Authorization": "Bearer b"})
                try:
                    with pytest.raises(ToolError, match="sent to the card's host only"):
                        await tool.run({"message": "hi"}, ctx)
                finally:
                    await tool.close()
            assert endpoint_hits == []

    arun(body(), timeout=60)
