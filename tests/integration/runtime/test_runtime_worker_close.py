"""Worker.kill()/close() end the background loops even when one swallows its cancellation.

redis-py (8.1) can swallow a cancellation that lands in a blocking XREADGROUP (the fetch loop)
and read on; close() used to wait for that loop forever (seen as a benchmark or test hanging at
its very end). The loop below swallows the first cancellation the same way, deterministically.
"""

from __future__ import annotations

import asyncio

from runtime_helpers import arun, make_config, running_worker


def test_close_ends_a_loop_that_swallows_its_first_cancellation(redis_server, fleet):
    async def body() -> None:
        swallowed = []

        async def stubborn() -> None:
            while True:
                try:
                    await asyncio.sleep(3600)
                except asyncio.CancelledError:
                    if swallowed:
                        raise
                    swallowed.append(asyncio.current_task().uncancel())  # as redis-py does: read on

        async with running_worker(make_config(redis_server.url, fleet)) as w:
            loop = asyncio.create_task(stubborn(), name="stubborn")
            w._background.append(loop)
            await asyncio.sleep(0.1)
            await asyncio.wait_for(w.kill(), 10)
        assert swallowed and loop.cancelled() and w._background == []

    arun(body(), 60)
