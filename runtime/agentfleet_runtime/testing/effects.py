"""A side-effect HTTP service for tests: it applies an effect once per Idempotency-Key, the way a
well-behaved payment or ticketing API does, and counts every request so a test can check that no
effect happened twice and see how often a resumed step re-sent one.

Endpoints: POST /effect (JSON body; answers {"applied": bool, "count": n}), POST /flaky (500
while the failure budget lasts), POST /hang (sleeps), GET /stats.
Run standalone: ``python -m agentfleet_runtime.testing.effects --port N`` (prints its URL).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections import Counter
from typing import Any

from aiohttp import web

from agentfleet_runtime.testing.server import LocalServer


class EffectServer(LocalServer):
    def __init__(self, flaky_failures: int = 0, hang_seconds: float = 3600.0) -> None:
        super().__init__()
        self.requests: Counter[str] = Counter()  # key -> requests received
        self.applied: dict[str, Any] = {}  # key -> body of the one applied effect
        self.unkeyed = 0
        self.flaky_left = flaky_failures
        self.flaky_calls = 0
        self.hang_seconds = hang_seconds

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/effect", self._effect)
        app.router.add_post("/flaky", self._flaky)
        app.router.add_post("/hang", self._hang)
        app.router.add_get("/stats", self._stats)
        app.router.add_post("/config", self._config)
        return app

    async def _effect(self, request: web.Request) -> web.Response:
        body = await request.json()
        key = request.headers.get("Idempotency-Key")
        if not key:
            self.unkeyed += 1
            return web.json_response({"applied": True, "keyed": False})
        self.requests[key] += 1
        fresh = key not in self.applied
        if fresh:
            self.applied[key] = body
        return web.json_response({"applied": fresh, "count": len(self.applied)})

    async def _flaky(self, request: web.Request) -> web.Response:
        self.flaky_calls += 1
        if self.flaky_left > 0:
            self.flaky_left -= 1
            return web.json_response({"error": "flaky"}, status=500)
        return web.json_response({"ok": True})

    async def _hang(self, request: web.Request) -> web.Response:
        await asyncio.sleep(self.hang_seconds)
        return web.json_response({"ok": True})

    async def _config(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.flaky_left = int(body.get("flaky_failures", self.flaky_left))
        return web.json_response({"flaky_left": self.flaky_left})

    async def _stats(self, _: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests": dict(self.requests),
                "applied": sorted(self.applied),
                "duplicates": {k: n for k, n in self.requests.items() if n > 1},
                "unkeyed": self.unkeyed,
                "flaky_calls": self.flaky_calls,
            }
        )


async def _main(port: int) -> None:
    server = EffectServer()
    await server.start("127.0.0.1", port)
    print(f"effects listening on {server.url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    asyncio.run(_main(p.parse_args().port))
