"""The task API over HTTP: auth, size bound, idempotent submit, get, SSE progress, cancel,
dead letters, health and metrics."""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager

import aiohttp
import pytest
from agentfleet_contract.runtime_config import RuntimeConfig
from aiohttp import web
from runtime_helpers import Echo, arun, environment, running_worker

from agentfleet_runtime.server.api import TaskAPI
from e2e.harness.ports import free_port

pytestmark = pytest.mark.integration
TOKEN = "s3cret-token"


@asynccontextmanager
async def api_server(config: RuntimeConfig, tokens_file):
    tokens_file.write_text(f"# fleet tokens\n{TOKEN}\nother-token\n")
    doc = config.model_dump(by_alias=True, mode="json")
    doc["api"] = {**doc["api"], "tokensFile": str(tokens_file), "maxRequestBytes": 4096, "maxGoalChars": 1000}
    api = TaskAPI(RuntimeConfig.model_validate(doc))
    runner = web.AppRunner(api.app(), shutdown_timeout=1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with aiohttp.ClientSession(
        base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {TOKEN}"}
    ) as http:
        try:
            yield http
        finally:
            api.closing = True
            await runner.cleanup()


def test_auth_and_request_bounds(redis_server, fleet, tmp_path):
    async def body():
        async with environment(redis_server.url, fleet) as env, api_server(env.config, tmp_path / "tokens") as http:
            port_url = str(http._base_url)
            async with aiohttp.ClientSession() as anon:
                r = await anon.post(port_url + "/v1/tasks", json={"goal": "x"})
                assert r.status == 401 and r.headers["WWW-Authenticate"] == "Bearer"
                r = await anon.post(
                    port_url + "/v1/tasks", json={"goal": "x"}, headers={"Authorization": "Bearer wrong"}
                )
                assert r.status == 401
                r = await anon.post(
                    port_url + "/v1/tasks", json={"goal": "x"}, headers={"Authorization": "Bearer other-token"}
                )
                assert r.status == 201
                assert (await anon.get(port_url + "/healthz")).status == 200
                assert (await anon.get(port_url + "/readyz")).status == 200
            r = await http.post(
                "/v1/tasks", data=json.dumps({"goal": "x" * 5000}), headers={"Content-Type": "application/json"}
            )
            assert r.status == 413 and "exceeds the limit of 4096" in (await r.json())["error"]
            r = await http.post("/v1/tasks", json={"goal": "y" * 1500})
            assert r.status == 400 and "limit is 1000" in (await r.json())["error"]
            r = await http.post("/v1/tasks", data=b"not json")
            assert r.status == 400
            r = await http.post("/v1/tasks", json={"goal": "g", "budgets": {"maxSteps": "many"}})
            assert r.status == 400 and "maxSteps" in (await r.json())["error"]
            assert (await http.get("/v1/tasks/nope")).status == 404
            metrics = await (await http.get("/metrics")).text()
            assert 'agentfleet_api_requests_total{code="401",route="/v1/tasks"}' in metrics

    arun(body())


def test_submit_is_idempotent_by_key(redis_server, fleet, tmp_path):
    async def body():
        async with environment(redis_server.url, fleet) as env, api_server(env.config, tmp_path / "tokens") as http:
            first = await http.post("/v1/tasks", json={"goal": "once"}, headers={"Idempotency-Key": "k-1"})
            again = await http.post("/v1/tasks", json={"goal": "once"}, headers={"Idempotency-Key": "k-1"})
            other = await http.post("/v1/tasks", json={"goal": "different"}, headers={"Idempotency-Key": "k-1"})
            body1, body2 = await first.json(), await again.json()
            assert (first.status, again.status, other.status) == (201, 200, 409)
            assert body1["id"] == body2["id"] and body2["created"] is False
            assert first.headers["Location"] == f"/v1/tasks/{body1['id']}"
            assert await env.store.r.xlen(env.store.keys.stream) == 1

    arun(body())


def test_get_stream_and_cancel(redis_server, fleet, tmp_path):
    async def body():
        async with (
            environment(redis_server.url, fleet) as env,
            api_server(env.config, tmp_path / "tokens") as http,
            running_worker(env.config, extra_tools=[Echo()]),
        ):
            r = await http.post(
                "/v1/tasks", json={"goal": "watch me #steps=3 #latency=0.1", "budgets": {"maxSteps": 10}}
            )
            tid = (await r.json())["id"]
            events = []
            async with http.get(f"/v1/tasks/{tid}/events") as resp:
                assert resp.headers["Content-Type"] == "text/event-stream"
                kind = None
                async for raw in resp.content:
                    line = raw.decode().rstrip("\n")
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        events.append((kind, json.loads(line[6:])))
            kinds = [k for k, _ in events]
            assert kinds[0] == "queued" and kinds[-1] == "finished" and "step" in kinds and "observations" in kinds
            assert events[-1][1]["reason"] == "final_answer"
            view = await (await http.get(f"/v1/tasks/{tid}")).json()
            assert view["status"] == "done" and view["stepCount"] == 3 and len(view["steps"]) == 3
            assert (
                view["usage"]["totalTokens"] > 0 and view["budgets"]["maxSteps"] == 10 and view["durationSeconds"] > 0
            )
            slim = await (await http.get(f"/v1/tasks/{tid}?steps=0")).json()
            assert "steps" not in slim and slim["stepCount"] == 3
            # Resume a stream from an event id: only what came after it.
            async with http.get(f"/v1/tasks/{tid}/events", headers={"Last-Event-ID": "0-0"}) as resp:
                text = await resp.text()
            assert text.count("event: finished") == 1

            r = await http.post("/v1/tasks", json={"goal": "cancel me #spawn=2 #child_latency=30"})
            tid2 = (await r.json())["id"]
            for _ in range(100):
                view = await (await http.get(f"/v1/tasks/{tid2}")).json()
                if len(view["children"]) == 2:
                    break
                await asyncio.sleep(0.05)
            r = await http.post(f"/v1/tasks/{tid2}/cancel")
            assert r.status == 202
            for _ in range(100):
                view = await (await http.get(f"/v1/tasks/{tid2}")).json()
                if view["status"] == "cancelled":
                    break
                await asyncio.sleep(0.05)
            assert view["status"] == "cancelled" and view["reason"] == "cancelled"
            kids = [await (await http.get(f"/v1/tasks/{c}")).json() for c in view["children"]]
            for _ in range(100):
                kids = [await (await http.get(f"/v1/tasks/{c}")).json() for c in view["children"]]
                if all(k["status"] == "cancelled" for k in kids):
                    break
                await asyncio.sleep(0.05)
            assert [k["status"] for k in kids] == ["cancelled", "cancelled"]
            r = await http.post(f"/v1/tasks/{tid2}/cancel")
            assert r.status == 200 and (await r.json())["cancelRequested"] is False
            assert (await http.post("/v1/tasks/unknown/cancel")).status == 404

    arun(body())


def test_dead_letters_are_visible(redis_server, fleet, tmp_path):
    async def body():
        async with (
            environment(redis_server.url, fleet) as env,
            api_server(env.config, tmp_path / "tokens") as http,
            running_worker(env.config),
        ):
            r = await http.post("/v1/tasks", json={"goal": "doomed #fail=1000"})
            tid = (await r.json())["id"]
            await env.wait(tid, 30)
            items = (await (await http.get("/v1/deadletters")).json())["items"]
            view = await (await http.get(f"/v1/tasks/{tid}")).json()
        assert items[0]["task"] == tid and "500" in items[0]["error"]
        assert view["status"] == "dead" and view["failures"] == 3 and "500" in view["error"]

    arun(body())


def test_api_refuses_to_start_without_tokens(redis_server, fleet):
    from runtime_helpers import make_config

    with pytest.raises(ValueError, match="tokensFile"):
        TaskAPI(make_config(redis_server.url, fleet))
