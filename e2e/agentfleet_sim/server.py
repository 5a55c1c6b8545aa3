"""aiohttp wrapper: one HTTP app per replica, bound to 127.0.0.1.

Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health,
GET /metrics, POST /tokenize, GET /version, and the simulator's own GET|POST /admin/config, POST /admin/drain,
GET /admin/state. Handlers are cancelled when the client disconnects, which aborts the engine
request, as vLLM does (hedged requests rely on that to free the loser's slot).
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Any

from aiohttp import web

from .exposition import CONTENT_TYPE
from .openai_api import ApiError, Kind
from .replica import Replica

REPLICA_KEY = web.AppKey("replica", Replica)
SIM_VERSION = "0.11.0+agentfleet-sim"


def _error(exc: ApiError) -> web.Response:
    return web.json_response(exc.body(), status=exc.status)


async def _json_body(request: web.Request) -> Any:
    try:
        return await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ApiError(400, f"invalid JSON body: {exc}") from exc


def _completion_handler(kind: Kind):  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.StreamResponse:
        replica = request.app[REPLICA_KEY]
        try:
            result = await replica.completion(await _json_body(request), kind)
        except ApiError as exc:
            return _error(exc)
        if isinstance(result, dict):
            return web.json_response(result)
        return await _sse(request, result)

    return handler


async def _sse(request: web.Request, chunks: AsyncIterator[dict[str, Any]]) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    try:
        async for chunk in chunks:
            await response.write(b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n")
        await response.write(b"data: [DONE]\n\n")
    except ApiError as exc:  # the headers are gone: report in-band like vLLM does
        await response.write(b"data: " + json.dumps(exc.body()).encode() + b"\n\n")
    finally:
        await chunks.aclose()  # type: ignore[attr-defined]
    await response.write_eof()
    return response


async def _health(request: web.Request) -> web.Response:
    return web.Response(status=200 if request.app[REPLICA_KEY].ready else 503)


async def _models(request: web.Request) -> web.Response:
    return web.json_response(request.app[REPLICA_KEY].models())


def _adapter_handler(action: str):  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.Response:
        replica = request.app[REPLICA_KEY]
        try:
            body = await _json_body(request)
            text = replica.load_adapter(body) if action == "load" else replica.unload_adapter(body)
        except ApiError as exc:
            return _error(exc)
        return web.Response(text=text)

    return handler


async def _metrics(request: web.Request) -> web.Response:
    try:
        text = request.app[REPLICA_KEY].metrics_text()
    except ApiError as exc:
        return _error(exc)
    return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE})


async def _tokenize(request: web.Request) -> web.Response:
    try:
        return web.json_response(request.app[REPLICA_KEY].tokenize(await _json_body(request)))
    except ApiError as exc:
        return _error(exc)


async def _version(request: web.Request) -> web.Response:
    return web.json_response({"version": SIM_VERSION})


async def _get_config(request: web.Request) -> web.Response:
    return web.json_response(asdict(request.app[REPLICA_KEY].faults))


async def _post_config(request: web.Request) -> web.Response:
    replica = request.app[REPLICA_KEY]
    try:
        changes = await _json_body(request)
        if not isinstance(changes, dict):
            raise ApiError(400, "expected a JSON object of fault fields")
        replica.configure(**changes)
    except ApiError as exc:
        return _error(exc)
    except (TypeError, ValueError) as exc:
        return _error(ApiError(400, str(exc)))
    return web.json_response(asdict(replica.faults))


async def _drain(request: web.Request) -> web.Response:
    replica = request.app[REPLICA_KEY]
    replica.drain()
    return web.json_response(replica.state())


async def _state(request: web.Request) -> web.Response:
    return web.json_response(request.app[REPLICA_KEY].state())


def make_app(replica: Replica) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)  # long agent histories
    app[REPLICA_KEY] = replica
    app.router.add_post("/v1/chat/completions", _completion_handler("chat"))
    app.router.add_post("/v1/completions", _completion_handler("completion"))
    app.router.add_get("/v1/models", _models)
    app.router.add_post("/v1/load_lora_adapter", _adapter_handler("load"))
    app.router.add_post("/v1/unload_lora_adapter", _adapter_handler("unload"))
    app.router.add_get("/health", _health)
    app.router.add_get("/metrics", _metrics)
    app.router.add_post("/tokenize", _tokenize)
    app.router.add_get("/version", _version)
    app.router.add_get("/admin/config", _get_config)
    app.router.add_post("/admin/config", _post_config)
    app.router.add_post("/admin/drain", _drain)
    app.router.add_get("/admin/state", _state)
    return app


class ReplicaServer:
    """A replica plus its HTTP listener."""

    def __init__(self, replica: Replica, host: str = "127.0.0.1", port: int = 0) -> None:
        self.replica = replica
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        await self.replica.start()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        self._runner = web.AppRunner(
            make_app(self.replica), handler_cancellation=True, access_log=None, shutdown_timeout=1.0
        )
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()

    async def stop(self) -> None:
        await self.replica.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"
