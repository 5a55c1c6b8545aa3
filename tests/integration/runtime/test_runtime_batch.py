"""The script batcher (batch.py) on a real redis-server: batching, error replies in place, NOSCRIPT
reloads and a connection killed between batches."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ResponseError
from runtime_helpers import arun

from agentfleet_runtime.store.batch import ScriptBatcher
from agentfleet_runtime.store.connection import connect

# Appends ARGV[1] to a list and returns the list's length; errors on request.
SCRIPT = """
if ARGV[1] == 'fail' then return redis.error_reply('asked to fail') end
return redis.call('RPUSH', KEYS[1], ARGV[1])
"""


@pytest.mark.parametrize("in_flight", [1, 3])
def test_concurrent_calls_share_round_trips_and_keep_their_own_replies(redis_server, fleet, in_flight):
    async def body() -> None:
        r = connect(redis_server.url)
        script = r.register_script(SCRIPT)
        await r.script_load(SCRIPT)
        batcher = ScriptBatcher(r, max_batch=50, max_in_flight=in_flight)
        sent: list[int] = []
        real_send = batcher._send

        async def counting_send(batch, conn):
            sent.append(len(batch))
            await real_send(batch, conn)

        batcher._send = counting_send
        try:
            keys = [f"{fleet}:k{i % 7}" for i in range(300)]
            args = ["fail" if i % 37 == 0 else str(i) for i in range(300)]
            results = await asyncio.gather(
                *(batcher.call(script, [k], [a]) for k, a in zip(keys, args, strict=True)), return_exceptions=True
            )
            for i, res in enumerate(results):
                if i % 37 == 0:
                    assert isinstance(res, ResponseError) and "asked to fail" in str(res)
                else:
                    assert isinstance(res, int) and res >= 1
            assert sum(sent) == 300 and len(sent) < 300 // 10, f"calls were not batched: {sent}"
            for k in range(7):
                values = [int(v) for v in await r.lrange(f"{fleet}:k{k}", 0, -1)]
                assert sorted(values) == [i for i in range(k, 300, 7) if i % 37]
                if in_flight == 1:  # one batch at a time: calls run in the order they were made
                    assert values == sorted(values)
        finally:
            await batcher.close()
            await r.aclose()

    arun(body(), 60)


def test_script_cache_flush_and_killed_connection_are_ridden_out(own_redis, fleet):
    # Its own Redis: flushing the script cache and killing every connection would reach the other
    # tests on the run's shared one.
    async def body() -> None:
        r = connect(own_redis.url)
        admin = connect(own_redis.url)
        script = r.register_script(SCRIPT)
        batcher = ScriptBatcher(r)
        try:
            # Never loaded: NOSCRIPT, loaded by the batcher, sent again.
            assert await batcher.call(script, [f"{fleet}:a"], ["1"]) == 1
            await admin.script_flush()
            assert await asyncio.gather(
                *(batcher.call(script, [f"{fleet}:a"], [str(i)]) for i in range(2, 12))
            ) == list(range(2, 12))
            # Every connection of the worker's pool dropped between two batches: retried on a new one.
            for c in await admin.client_list():
                if c["id"] != str(await admin.client_id()):
                    await admin.client_kill_filter(_id=c["id"])
            assert await batcher.call(script, [f"{fleet}:a"], ["12"]) == 12
            assert await r.llen(f"{fleet}:a") == 12
        finally:
            await batcher.close()
            await r.aclose()
            await admin.aclose()

    arun(body(), 60)


def test_a_cancelled_caller_does_not_disturb_the_batch(redis_server, fleet):
    async def body() -> None:
        r = connect(redis_server.url)
        script = r.register_script(SCRIPT)
        await r.script_load(SCRIPT)
        batcher = ScriptBatcher(r)
        try:
            doomed = asyncio.ensure_future(batcher.call(script, [f"{fleet}:c"], ["x"]))
            kept = [batcher.call(script, [f"{fleet}:c"], [str(i)]) for i in range(3)]
            doomed.cancel()
            assert await asyncio.gather(*kept) == [2, 3, 4]  # the cancelled call still ran, first
            with pytest.raises(asyncio.CancelledError):
                await doomed
        finally:
            await batcher.close()
            await r.aclose()

    arun(body(), 60)


def test_large_replies_spanning_many_reads_keep_their_order(redis_server, fleet):
    # Replies of a batch arrive over many socket reads: each must still go to its own caller.
    big = "return string.rep(ARGV[1], tonumber(ARGV[2]))"

    async def body() -> None:
        r = connect(redis_server.url)
        script = r.register_script(big)
        await r.script_load(big)
        batcher = ScriptBatcher(r, max_batch=64, max_in_flight=1)
        try:
            sizes = [(chr(ord("a") + i % 26), 50_000 + 997 * i) for i in range(40)]
            replies = await asyncio.gather(*(batcher.call(script, [f"{fleet}:k"], [ch, n]) for ch, n in sizes))
            assert [(rep[0], len(rep), set(rep)) for rep in replies] == [(ch, n, {ch}) for ch, n in sizes]
            # The sender's kept connection serves the next batch too.
            assert await batcher.call(script, [f"{fleet}:k"], ["z", 3]) == "zzz"
        finally:
            await batcher.close()
            await r.aclose()

    arun(body(), 60)
