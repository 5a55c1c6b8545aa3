"""The lean HTTP/1.1 model client (http1.py) against real servers on loopback: an aiohttp app for
the normal exchanges, and raw asyncio servers for what aiohttp will not do on request (chunked
bodies, closing idle keep-alive connections, cutting a response short)."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web
from runtime_helpers import arun

from agentfleet_runtime.model.client import ModelError, OpenAIChatClient
from agentfleet_runtime.model.http1 import ConnectionFailed, Http1Client


async def _app_server(handler) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_post("/v1/chat/completions", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]


def test_keep_alive_reuses_one_connection_and_sends_headers_and_body():
    async def body() -> None:
        seen: list[tuple[str, str, dict, int]] = []

        async def handler(request: web.Request) -> web.Response:
            payload = await request.json()
            peer = request.transport.get_extra_info("peername")
            seen.append((request.headers["Authorization"], request.headers["Content-Type"], payload, peer[1]))
            return web.json_response({"echo": payload["n"], "text": "é" * 3})

        runner, port = await _app_server(handler)
        client = Http1Client(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            {"Content-Type": "application/json", "Authorization": "Bearer k"},
        )
        try:
            for n in range(5):
                status, raw = await client.post(json.dumps({"n": n}).encode())
                assert status == 200 and json.loads(raw) == {"echo": n, "text": "ééé"}
            assert [s[2]["n"] for s in seen] == list(range(5))
            assert {s[0] for s in seen} == {"Bearer k"} and {s[1] for s in seen} == {"application/json"}
            assert len({s[3] for s in seen}) == 1, "sequential calls must share one keep-alive connection"
            # Concurrent calls each get a connection of their own, and all come back to the pool.
            results = await asyncio.gather(*(client.post(json.dumps({"n": n}).encode()) for n in range(20)))
            assert sorted(json.loads(r[1])["echo"] for r in results) == list(range(20))
            assert len(client._idle) == len({s[3] for s in seen[5:]})
        finally:
            await client.close()
            await runner.cleanup()

    arun(body(), 30)


async def _raw_server(respond) -> tuple[asyncio.AbstractServer, int, list[int]]:
    """A server that reads one request head + body per exchange and lets ``respond`` answer it."""
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                body = await reader.readexactly(length)
                if not await respond(writer, body, len(connections)):
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], connections


def test_chunked_body_interim_response_and_connection_close():
    async def body() -> None:
        async def respond(writer: asyncio.StreamWriter, req: bytes, _conn: int) -> bool:
            if req == b"chunked":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                writer.write(b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: y\r\n\r\n")
                await writer.drain()
                return True
            writer.write(b"HTTP/1.1 503 Busy\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy")
            await writer.drain()
            return False

        server, port, connections = await _raw_server(respond)
        client = Http1Client(f"http://127.0.0.1:{port}/x", {})
        try:
            assert await client.post(b"chunked") == (200, b"hello, world")
            assert await client.post(b"chunked") == (200, b"hello, world")
            assert len(connections) == 1
            assert await client.post(b"close") == (503, b"busy")
            assert client._idle == [], "a Connection: close response must not be pooled"
            assert await client.post(b"chunked") == (200, b"hello, world")
            assert len(connections) == 2
        finally:
            await client.close()
            server.close()

    arun(body(), 30)


def test_idle_connection_closed_by_the_server_is_replaced_transparently():
    async def body() -> None:
        async def respond(writer: asyncio.StreamWriter, req: bytes, conn: int) -> bool:
            if req == b"dropped" and conn == 2:
                return False  # closes a kept-alive connection with the request unanswered
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(req), req))
            await writer.drain()
            return req != b"then close"  # the server's idle timeout, racing the next request

        server, port, connections = await _raw_server(respond)
        client = Http1Client(f"http://127.0.0.1:{port}/x", {})
        try:
            assert await client.post(b"then close") == (200, b"then close")
            # The closed connection went back to the pool before the server's FIN arrived:
            # the next request finds it dead and goes out on a new one.
            assert await client.post(b"again") == (200, b"again")
            assert len(connections) == 2
            # Closed with no byte of a response on a reused connection: sent again on a new one.
            assert await client.post(b"dropped") == (200, b"dropped")
            assert len(connections) == 3
        finally:
            await client.close()
            server.close()

    arun(body(), 30)


def test_cut_response_fails_and_is_never_pooled():
    async def body() -> None:
        async def respond(writer: asyncio.StreamWriter, req: bytes, _conn: int) -> bool:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
            await writer.drain()
            return False

        server, port, _ = await _raw_server(respond)
        client = Http1Client(f"http://127.0.0.1:{port}/x", {})
        try:
            with pytest.raises(ConnectionFailed):
                await client.post(b"x")
            assert client._idle == []
        finally:
            await client.close()
            server.close()
        with pytest.raises(ConnectionFailed):
            await Http1Client(f"http://127.0.0.1:{port}/x", {}).post(b"x")  # nothing listens now

    arun(body(), 30)


def test_model_client_uses_it_for_http_and_maps_failures_to_model_errors():
    async def body() -> None:
        calls = {"n": 0}

        async def handler(request: web.Request) -> web.Response:
            calls["n"] += 1
            if calls["n"] == 1:
                return web.Response(status=500, text="boom")
            if calls["n"] == 2:
                await asyncio.sleep(2)  # past the client's timeout
            return web.json_response(
                {
                    "choices": [{"message": {"content": "hi"}, "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": 3, "completion_tokens": 1},
                }
            )

        runner, port = await _app_server(handler)
        client = OpenAIChatClient(f"http://127.0.0.1:{port}/v1", "m", timeout=0.5, max_retries=2)
        try:
            assert client._h1 is not None
            from agentfleet_runtime.model.client import ModelRequest

            reply = await client.complete(ModelRequest(messages=[{"role": "user", "content": "x"}]))
            assert reply.content == "hi" and reply.usage.prompt_tokens == 3 and calls["n"] == 3
            client.max_retries = 0
            calls["n"] = 0
            with pytest.raises(ModelError, match="answered 500"):
                await client.complete(ModelRequest(messages=[{"role": "user", "content": "x"}]))
        finally:
            await client.close()
            await runner.cleanup()
        assert OpenAIChatClient("https://example.invalid/v1", "m")._h1 is None  # https stays on aiohttp

    arun(body(), 30)


def test_response_in_tiny_pieces_timeout_mid_response_and_stray_bytes():
    async def body() -> None:
        async def respond(writer: asyncio.StreamWriter, req: bytes, _conn: int) -> bool:
            payload = b'{"ok": "' + req + b'"}'
            if req == b"slow":  # the head, then nothing: the caller's timeout must close it
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{")
                await writer.drain()
                await asyncio.sleep(5)
                return False
            raw = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
                len(payload),
                payload,
            )
            if req == b"stray":
                raw += b"HTTP/1.1 200 OK\r\n"  # bytes after the response: the connection is unusable
            for i in range(len(raw)):  # one byte per write: the parser must wait for the rest
                writer.write(raw[i : i + 1])
                await writer.drain()
            return True

        server, port, connections = await _raw_server(respond)
        client = Http1Client(f"http://127.0.0.1:{port}/x", {})
        try:
            assert await client.post(b"pieces") == (200, b'{"ok": "pieces"}')
            assert len(client._idle) == 1
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await client.post(b"slow")
            assert client._idle == [], "a connection left mid-response must be closed, not pooled"
            assert await client.post(b"stray") == (200, b'{"ok": "stray"}')
            assert client._idle == [], "a connection with bytes past the response must not be pooled"
            assert await client.post(b"after") == (200, b'{"ok": "after"}')
            assert len(connections) == 3
        finally:
            await client.close()
            server.close()

    arun(body(), 30)
