"""The runtime against a Sentinel-managed Redis, all real processes on 127.0.0.1 (redis-server,
a replica and three redis-sentinel): it finds the primary through the Sentinels, rides out a
kill -9 of the primary, and the task API acknowledges a submission only once a replica holds it
(c4625b5 had no Sentinel support and acknowledged at once)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest
from runtime_helpers import anonymous_api, arun, make_config

from agentfleet_runtime.store.connection import connect
from e2e.harness.redis import SentinelGroup

pytestmark = pytest.mark.integration


@pytest.fixture
def sentinels(tmp_path):
    group = SentinelGroup(tmp_path / "sentinel")
    group.start()
    yield group
    group.stop()


def test_the_client_finds_the_primary_through_sentinel_and_follows_a_failover(sentinels):
    async def body() -> float:
        r = connect(sentinels.url)
        try:
            old = sentinels.primary_port()
            await r.set("before", "1")
            assert await r.execute_command("WAIT", 1, 2000) == 1  # the replica has it
            sentinels.server_on(old).stop(kill=True)
            killed = time.monotonic()
            await r.set("after", "2")  # retried until the Sentinels promote the replica
            took = time.monotonic() - killed
            assert sentinels.primary_port() != old
            assert await r.get("before") == "1" and await r.get("after") == "2"
            return took
        finally:
            await r.aclose()

    took = arun(body(), 90)
    assert took < 30, f"the first write after the kill took {took:.1f} s"


def test_a_submission_is_acknowledged_only_once_a_replica_has_it(sentinels, fleet):
    async def body() -> None:
        config = make_config(
            sentinels.url, fleet, api={"allowAnonymous": True}, redisAckReplicas=1, redisAckTimeoutMs=2000
        )
        async with anonymous_api(config) as http:
            ok = await http.post("/v1/tasks", json={"goal": "replicated"})
            assert ok.status == 201, await ok.text()
            sentinels.servers[1].stop(kill=True)  # the only replica
            refused = await http.post("/v1/tasks", json={"goal": "primary only"}, headers={"Idempotency-Key": "k1"})
            assert refused.status == 503, await refused.text()
            got = await refused.json()
            assert "replicas" in got["error"] and got["id"] and refused.headers["Retry-After"]
            sentinels.servers[1].start()
            for _ in range(100):
                if sentinels.replicas_in_sync():
                    break
                time.sleep(0.1)
            again = await http.post("/v1/tasks", json={"goal": "primary only"}, headers={"Idempotency-Key": "k1"})
            assert again.status == 200 and (await again.json())["id"] == got["id"], (
                "the retry must return the same task"
            )

    arun(body(), 90)


def test_the_operator_probe_reaches_the_primary_through_the_sentinels(sentinels, fleet):
    from agentfleet.controllers.agentfleet import probe_redis

    ok, error, _ = probe_redis(sentinels.url, None, fleet)
    assert ok, error
    ok, _, _ = probe_redis(sentinels.url.replace("/af/", "/nosuchmaster/"), None, fleet)
    assert not ok


def test_durable_submissions_go_on_after_a_failover(tmp_path, fleet):
    # Two replicas: after the primary's kill one is promoted and the other follows it, so WAIT 1
    # can be met again. The promoted primary's script cache is empty: the first pipelined
    # submission there failed with NoScriptError (a 500) before the store loaded it again.
    group = SentinelGroup(tmp_path / "sentinel2", replicas=2)
    group.start()

    async def body() -> list[int]:
        config = make_config(group.url, fleet, api={"allowAnonymous": True}, redisAckReplicas=1, redisAckTimeoutMs=500)
        codes: list[int] = []
        after = asyncio.Event()

        async def submitter(http: aiohttp.ClientSession, n: int) -> None:
            # Submissions in flight across the kill: some are pipelined to the old primary and
            # retried on the new one.
            for i in range(400):
                resp = await http.post(
                    "/v1/tasks", json={"goal": f"g{n}-{i}"}, headers={"Idempotency-Key": f"k{n}-{i}"}
                )
                codes.append(resp.status)
                if after.is_set() and resp.status in (200, 201):
                    return
                if resp.status == 503:
                    await asyncio.sleep(0.2)

        async with anonymous_api(config) as http:
            # Just after start a replica may still be in its first sync: WAIT 1 then times out and
            # the API answers 503 with Retry-After (nothing acknowledged that no replica holds).
            first = await http.post("/v1/tasks", json={"goal": "before"}, headers={"Idempotency-Key": "before"})
            deadline = time.monotonic() + 20
            while first.status == 503 and time.monotonic() < deadline:
                assert first.headers.get("Retry-After")
                await asyncio.sleep(float(first.headers["Retry-After"]))
                first = await http.post("/v1/tasks", json={"goal": "before"}, headers={"Idempotency-Key": "before"})
            # 200: the retry found the task the refused attempt had written, now acknowledged.
            assert first.status in (200, 201)
            loops = [asyncio.create_task(submitter(http, n)) for n in range(8)]
            await asyncio.sleep(0.5)
            group.server_on(group.primary_port()).stop(kill=True)
            after.set()
            await asyncio.gather(*loops)
        return codes

    try:
        codes = arun(body(), 120)
    finally:
        group.stop()
    assert set(codes) <= {200, 201, 503} and codes.count(201) > 8, sorted(set(codes))
