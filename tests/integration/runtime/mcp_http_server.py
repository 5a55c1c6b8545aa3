"""A streamable-HTTP MCP server for the MCP tests, built on the SDK's own server (``MCPServer``,
FastMCP's successor) because the reference servers on PyPI (time, git, fetch) speak stdio only.

``python mcp_http_server.py PORT`` serves /mcp on 127.0.0.1:PORT and prints "mcp listening".
Its tools: ``add``; ``unlock``, which adds the tool ``secret_word`` and sends
notifications/tools/list_changed; ``whoami``, which answers with the request's _meta (the
idempotency key a side-effect call carries); ``nap``, which sleeps; ``huge``, which answers 200,000
characters. ``POST /add`` answers the same sum as plain HTTP, from the same process: the baseline
of e2e/bench/mcp_overhead.py.
"""

from __future__ import annotations

import asyncio
import json
import sys

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from starlette.requests import Request
from starlette.responses import PlainTextResponse

server = MCPServer("agentfleet-test")


@server.tool()
def add(a: int, b: int) -> str:
    """Adds two integers."""
    return str(a + b)


@server.custom_route("/add", methods=["POST"])
async def add_over_http(request: Request) -> PlainTextResponse:
    body = await request.json()
    return PlainTextResponse(str(int(body["a"]) + int(body["b"])))


@server.tool()
async def unlock(ctx: Context) -> str:
    """Makes the secret_word tool available."""

    def secret_word() -> str:
        """Says the secret word."""
        return "swordfish"

    server.add_tool(secret_word, name="secret_word")
    await ctx.request_context.session.send_tool_list_changed()
    return "unlocked"


@server.tool()
def whoami(ctx: Context) -> str:
    """Returns the _meta of the request."""
    return json.dumps(ctx.request_context.meta or {}, sort_keys=True)


@server.tool()
async def nap(seconds: float) -> str:
    """Sleeps, then answers."""
    await asyncio.sleep(seconds)
    return "rested"


@server.tool()
def huge() -> str:
    """Answers with far more text than a model should read."""
    return "x" * 200_000


if __name__ == "__main__":
    port = int(sys.argv[1])
    print("mcp listening", flush=True)
    uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=port, log_level="warning")
