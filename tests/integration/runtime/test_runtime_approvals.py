"""Approval of tool calls (toolPolicies[].requireApproval) against a real Redis, the real task API
and real workers (in-process, and worker processes killed with SIGKILL), with the scripted model
and the side-effect service: a call above the condition waits durably in ``awaiting_approval``
holding no worker, approve runs it exactly once, deny and the timeout become observations the
model reads, another tenant cannot decide, and the wait spends no time budget."""

from __future__ import annotations

import asyncio
import io
import json
import time
from typing import Any

import pytest
import redis
import yaml
from agentfleet_contract.fleet_stats import read_fleet_stats
from agentfleet_contract.runtime_config import RuntimeConfig
from prometheus_client import REGISTRY
from runtime_helpers import (
    Echo,
    arun,
    environment,
    running_worker,
    start_effects,
    start_scripted_model,
    start_worker,
    store_for,
)
from test_runtime_api_tenants import REVIEWERS, tenant_api

from agentfleet_client import approvals as approvals_cli
from agentfleet_runtime.store.approvals import approvals_key

pytestmark = pytest.mark.integration

PAY = {"name": "pay", "type": "HTTP", "http": {"url": "EFFECTS/effect", "sideEffects": True}, "timeoutSeconds": 5}


def policy(timeout: int = 60) -> dict[str, Any]:
    rule = {"when": [{"argument": "/amount", "above": 100}], "timeoutSeconds": timeout}
    return {"toolPolicies": [{"tool": "pay", "requireApproval": rule}]}


def goal(text: str, amount: int) -> str:
    return f'{text} #steps=2 #tool=pay #args={{"amount":{amount}}}'


async def submit(session: Any, text: str, **extra: Any) -> str:
    r = await session.post("/v1/tasks", json={"goal": text, **extra})
    assert r.status == 201, await r.text()
    return (await r.json())["id"]


async def view(session: Any, tid: str) -> dict[str, Any]:
    r = await session.get(f"/v1/tasks/{tid}")
    assert r.status == 200
    return await r.json()


async def wait_status(session: Any, tid: str, statuses: set[str], timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        v = await view(session, tid)
        if v["status"] in statuses:
            return v
        assert time.monotonic() < deadline, f"task {tid} stayed {v['status']}, wanted {statuses}"
        await asyncio.sleep(0.02)


async def event_types(store: Any, tid: str) -> list[dict[str, Any]]:
    return [json.loads(f["e"]) for _, f in await store.r.xrange(store.keys.events(tid))]


def counted(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def decide(session: Any, tid: str, decision: str, **extra: Any) -> tuple[int, dict[str, Any]]:
    r = await session.post(f"/v1/tasks/{tid}/approvals", json={"decision": decision, **extra})
    return r.status, await r.json()


def test_approve_runs_the_waiting_call_once_and_only_the_owner_decides(redis_server, fleet, tmp_path):
    async def body():
        async with (
            environment(redis_server.url, fleet, tools=[PAY], decisions=policy()) as env,
            tenant_api(env.config, tmp_path) as (_, s),
            running_worker(env.config) as w,
        ):
            acme = s["acme"]
            small = await submit(acme, goal("small refund", 50))  # below the condition: runs at once
            big = await submit(acme, goal("big refund", 500))
            waiting = await wait_status(acme, big, {"awaiting_approval"})
            assert waiting["approval"]["waiting"] and waiting["approval"]["calls"][0]["arguments"] == {"amount": 500}
            assert (await wait_status(acme, small, {"done"}))["approval"] is None
            proposed = [e for e in await event_types(env.store, big) if e["type"] == "approval_requested"]
            assert len(proposed) == 1 and proposed[0]["calls"][0]["tool"] == "pay" and proposed[0]["step"] == 0
            # Nothing holds it: no worker task, no pending stream entry, no applied effect.
            assert not w.held and w.slots.free == env.config.worker.concurrency
            assert (await env.store.r.xpending(env.store.keys.stream, "workers"))["pending"] == 0
            assert f"{big}:0:0" not in env.effects.applied
            sync = redis.Redis.from_url(redis_server.url, decode_responses=True)
            stats = await asyncio.to_thread(read_fleet_stats, sync, fleet)  # the operator's status read
            sync.close()
            assert (stats.awaiting_approval, stats.in_flight) == (1, 0)
            listed = await (await s["acme:review"].get("/v1/approvals")).json()
            assert [(i["task"], i["calls"][0]["tool"], i["calls"][0]["arguments"]) for i in listed["items"]] == [
                (big, "pay", {"amount": 500})
            ]
            assert (await (await s["globex:review"].get("/v1/approvals")).json())["items"] == []
            assert (await decide(s["globex:review"], big, "approve"))[0] == 404  # another tenant's task is absent
            status, err = await decide(s["acme:review"], big, "maybe")
            assert status == 400 and "decision" in err["error"]
            approved_before = counted("agentfleet_approvals_decided_total", decision="approved")
            posted = time.monotonic()
            status, ok = await decide(s["acme:review"], big, "approve", reason="checked", step=0)
            assert status == 200 and ok["approval"]["decision"] == "approved"
            while f"{big}:0:0" not in env.effects.applied:
                await asyncio.sleep(0.001)
            round_trip = time.monotonic() - posted
            assert (await decide(s["acme:review"], big, "approve", step=0))[1]["repeated"] is True  # idempotent
            assert (await decide(s["acme:review"], big, "deny", step=0))[0] == 409  # decided already
            done = await wait_status(acme, big, {"done"})
            assert done["reason"] == "final_answer" and done["approval"]["decision"] == "approved"
            assert env.effects.requests[f"{big}:0:0"] == 1  # the approved call ran exactly once
            assert counted("agentfleet_approvals_decided_total", decision="approved") == approved_before + 1
            assert counted("agentfleet_approvals_requested_total", tool="pay") >= 1
            assert await env.store.r.zcard(approvals_key(env.store.keys)) == 0
            assert (await decide(s["acme:review"], big, "deny"))[0] == 409  # not waiting
            print(f"\napproval round trip (POST to the approved call at the tool): {round_trip * 1000:.1f} ms")

    arun(body())


def test_deny_and_timeout_are_observations_the_model_reads(redis_server, fleet, tmp_path):
    async def body():
        async with (
            environment(redis_server.url, fleet, tools=[PAY], decisions=policy(timeout=1)) as env,
            tenant_api(env.config, tmp_path) as (base, s),
            running_worker(env.config),
        ):
            acme = s["acme"]
            before = {d: counted("agentfleet_approvals_decided_total", decision=d) for d in ("denied", "timeout")}
            denied = await submit(acme, goal("denied refund", 900))
            await wait_status(acme, denied, {"awaiting_approval"})
            # kubectl agentfleet approvals: list, then deny (sync urllib: off the API's event loop).
            token = tmp_path / "acme.token"
            token.write_text(REVIEWERS["acme"] + "\n")  # a reviewer's token (scope approver)
            cli = ["--api", base, "--token-file", str(token)]
            listed, decided = io.StringIO(), io.StringIO()
            assert await asyncio.to_thread(approvals_cli.main, cli, out=listed) == 0
            header, row = listed.getvalue().splitlines()
            assert header.split()[:4] == ["TASK", "TENANT", "STEP", "TOOL"]
            assert row.split()[:5] == [denied, "acme", "0", "pay", '{"amount":900}']
            deny = [*cli, "deny", denied, "--reason", "over the limit"]
            assert await asyncio.to_thread(approvals_cli.main, deny, out=decided) == 0
            assert decided.getvalue().startswith(f"{denied} step 0: denied by acme/")
            out = await wait_status(acme, denied, {"done"})
            obs = out["steps"][0]["observations"][0]
            assert not obs["ok"] and "denied" in obs["output"] and "over the limit" in obs["output"]
            assert "a reviewer denied this call" in out["answer"]  # the scripted model quotes what it read
            timed = await submit(acme, goal("forgotten refund", 900))
            out = await wait_status(acme, timed, {"done"}, timeout=20)
            assert "nobody approved" in out["steps"][0]["observations"][0]["output"]
            assert out["approval"]["decision"] == "timeout"
            assert not any(k.startswith((denied, timed)) for k in env.effects.applied)  # neither ran
            after = {d: counted("agentfleet_approvals_decided_total", decision=d) for d in ("denied", "timeout")}
            assert after == {d: n + 1 for d, n in before.items()}

    arun(body())


def test_waiting_spends_no_time_budget_and_cancel_ends_a_waiting_task(redis_server, fleet, tmp_path):
    async def body():
        async with (
            environment(redis_server.url, fleet, tools=[PAY], decisions=policy()) as env,
            tenant_api(env.config, tmp_path) as (_, s),
            running_worker(env.config),
        ):
            acme = s["acme"]
            tid = await submit(acme, goal("slow review", 500), budgets={"timeoutSeconds": 3})
            await wait_status(acme, tid, {"awaiting_approval"})
            await asyncio.sleep(4)  # longer than the task's whole time budget
            assert (await decide(s["acme:review"], tid, "approve"))[0] == 200
            out = await wait_status(acme, tid, {"done"})
            assert out["reason"] == "final_answer" and env.effects.requests[f"{tid}:0:0"] == 1
            assert out["approval"]["waitedSeconds"] >= 4
            gone = await submit(acme, goal("dropped", 500))
            await wait_status(acme, gone, {"awaiting_approval"})
            assert (await acme.post(f"/v1/tasks/{gone}/cancel")).status in (200, 202)
            assert (await wait_status(acme, gone, {"cancelled"}))["status"] == "cancelled"
            assert await env.store.r.zcard(approvals_key(env.store.keys)) == 0

    arun(body())


def test_worker_killed_while_a_task_waits_then_approved_finishes_once(redis_server, fleet, tmp_path, procs):
    model_url = start_scripted_model(procs, tmp_path)
    effects_url = start_effects(procs, tmp_path)
    doc = {
        "fleet": fleet,
        "redisUrl": redis_server.url,
        "model": {"baseUrl": model_url, "name": "scripted", "timeoutSeconds": 10, "maxRetries": 3},
        "worker": {"concurrency": 8, "metricsPort": 0, "shutdownGraceSeconds": 2, "retryBackoffSeconds": 0.2},
        "retry": {"maxAttempts": 3, "visibilityTimeoutSeconds": 5},
        "tools": [{**PAY, "http": {**PAY["http"], "url": effects_url + "/effect"}}],
        "decisions": policy(),
    }
    path = tmp_path / "runtime.yaml"
    path.write_text(yaml.safe_dump(doc))
    config = RuntimeConfig.model_validate(doc)
    first = start_worker(procs, path, tmp_path, "w1")

    async def body():
        import aiohttp

        store = store_for(config)
        async with tenant_api(config, tmp_path) as (_, s):
            acme = s["acme"]
            tid = await submit(acme, goal("refund across a crash", 700))
            await wait_status(acme, tid, {"awaiting_approval"}, timeout=60)
            first.proc.kill()  # SIGKILL while the task waits
            first.proc.wait()
            raw = await store.r.hgetall(store.keys.task(tid))
            pending = (await store.r.xpending(store.keys.stream, "workers"))["pending"]
            parked = await store.r.zscore(approvals_key(store.keys), tid)
            steps = await store.steps(tid)
            after_kill = {
                "status": raw["status"],
                "lease": raw["lease"],
                "pending_entries": pending,
                "in_approvals_set": parked is not None,
                "stored_steps": len(steps),
                "step0_observations": steps[0].observations,
            }
            assert after_kill == {
                "status": "awaiting_approval",
                "lease": "",
                "pending_entries": 0,
                "in_approvals_set": True,
                "stored_steps": 1,
                "step0_observations": None,
            }
            assert (await decide(s["acme:review"], tid, "approve", step=0))[0] == 200
            start_worker(procs, path, tmp_path, "w2")
            out = await wait_status(acme, tid, {"done"}, timeout=60)
            async with aiohttp.ClientSession() as http:
                stats = await (await http.get(effects_url + "/stats")).json()
        await store.r.aclose()
        return after_kill, out, stats

    after_kill, out, stats = arun(body(), 180)
    assert out["reason"] == "final_answer" and out["attempts"] == 2
    assert list(stats["applied"]) == [f"{out['id']}:0:0"] and not stats["duplicates"]
    print(f"\nstate after the worker's SIGKILL: {after_kill}")


def test_an_approved_call_of_a_tool_without_side_effects_is_recorded_so_a_crash_never_repeats_it(
    redis_server, fleet, tmp_path
):
    gated_echo = {"toolPolicies": [{"tool": "echo", "requireApproval": {}}]}

    async def body():
        async with (
            environment(redis_server.url, fleet, tools=[PAY], decisions=gated_echo) as env,
            tenant_api(env.config, tmp_path) as (_, s),
            running_worker(env.config, extra_tools=[Echo()]),
        ):
            acme = s["acme"]
            tid = await submit(acme, "look #steps=2 #tool=echo")
            await wait_status(acme, tid, {"awaiting_approval"})
            assert await env.store.recorded_results(tid, 0, 1) == [None]
            assert (await decide(s["acme:review"], tid, "approve"))[0] == 200
            await wait_status(acme, tid, {"done"})
            recorded = await env.store.recorded_results(tid, 0, 1)
            assert recorded[0] is not None and recorded[0].ok and recorded[0].output.startswith("echo")

    arun(body())
