#!/usr/bin/env python3
"""Issue 39's probes of the task API against one checkout (argv[1]: its root; default this one),
with a real redis-server on loopback; prints each probe and the status it got (not a test: the
attack table in docs/security.md names the test that pins each row).

    .venv/bin/python -m e2e.bench.security_probe [REPO_ROOT]

Run it on an older checkout to see what that code answered: where the checkout has no tenants
module, the two tokens are plain lines (the only form it knew).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

from e2e.harness.installers import ensure_redis_server
from e2e.harness.ports import free_port
from e2e.harness.redis import RedisServer

# The task API under test comes from the checkout named on the command line (default this one):
# its packages go first on the path, the one reason this bench edits it.
ROOT = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / d) for d in ("runtime", "operator", "shared")]

import aiohttp  # noqa: E402
from agentfleet_contract.runtime_config import RuntimeConfig  # noqa: E402
from aiohttp import web  # noqa: E402

from agentfleet_runtime.server.api import TaskAPI  # noqa: E402


def api_config(redis_url: str, fleet: str, tokens_file: Path) -> RuntimeConfig:
    """A task API's runtime config: no model is called (tasks only queue here)."""
    return RuntimeConfig.model_validate(
        {"fleet": fleet, "redisUrl": redis_url, "model": {"baseUrl": "http://127.0.0.1:9/v1", "name": "none"},
         "api": {"tokensFile": str(tokens_file)}}
    )  # fmt: skip


try:
    from agentfleet_runtime.core.tenants import token_line

    TOKENS = token_line("acme", "tok-a") + "\n" + token_line("globex", "tok-b") + "\n"
except ImportError:  # a checkout from before tenants
    TOKENS = "tok-a\ntok-b\n"

A = {"Authorization": "Bearer tok-a"}
B = {"Authorization": "Bearer tok-b"}
BODIES = [
    ("NaN timeoutSeconds", b'{"goal":"g","budgets":{"timeoutSeconds":NaN}}'),
    ("1e999 maxTokens", b'{"goal":"g","budgets":{"maxTokens":1e999}}'),
    ("lone surrogate goal", b'{"goal":"\\ud800"}'),
    ("depth bomb (50k)", b'{"goal":"g","metadata":' + b"[" * 50000 + b"]" * 50000 + b"}"),
]


async def probe(http: aiohttp.ClientSession) -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    r = await http.post("/v1/tasks", json={"goal": "A's secret"}, headers={**A, "Idempotency-Key": "k1"})
    tid = (await r.json())["id"]
    out.append(("B reads A's task", (await http.get(f"/v1/tasks/{tid}", headers=B)).status))
    r = await http.get(f"/v1/tasks/{tid}/events", headers=B)
    out.append(("B opens A's event stream", r.status))
    r.close()
    r = await http.post("/v1/tasks", json={"goal": "A's secret"}, headers={**B, "Idempotency-Key": "k1"})
    out.append(("B replays A's Idempotency-Key", f"{r.status}, A's id: {(await r.json()).get('id') == tid}"))
    out.append(
        (
            "B names tenant acme in the body",
            (await http.post("/v1/tasks", json={"goal": "x", "tenant": "acme"}, headers=B)).status,
        )
    )
    for name, raw in BODIES:
        out.append(
            (name, (await http.post("/v1/tasks", data=raw, headers={**A, "Content-Type": "application/json"})).status)
        )
    for name, params, headers in (
        ("after=nope", {"after": "nope"}, {}),
        ("Last-Event-ID: x-y", None, {"Last-Event-ID": "x-y"}),
    ):
        r = await asyncio.wait_for(http.get(f"/v1/tasks/{tid}/events", headers={**A, **headers}, params=params), 20)
        out.append((name, r.status))
        r.close()
    out.append(("B cancels A's task", (await http.post(f"/v1/tasks/{tid}/cancel", headers=B)).status))
    return out


async def main(url: str, tmp: Path) -> None:
    (tmp / "tokens").write_text(TOKENS)
    api = TaskAPI(api_config(url, "probe", tmp / "tokens"))
    runner = web.AppRunner(api.app(), shutdown_timeout=1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    async with aiohttp.ClientSession(f"http://127.0.0.1:{port}") as http:
        results = await probe(http)
    api.closing = True
    await runner.cleanup()
    for name, status in results:
        print(f"  {name:34s} {status}")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as t:
        server = RedisServer(ensure_redis_server(), Path(t) / "redis")
        server.start()
        try:
            asyncio.run(main(server.url, Path(t)))
        finally:
            server.stop()
