"""A small HTTP/1.1 keep-alive client for the model calls of a worker (plain http:// only).

Why not aiohttp for this one request shape: with a thousand tasks in a worker, aiohttp's
per-request machinery (request/response objects, a writer task per request, header and payload
registries) was the largest share of a step's CPU, several times the cost of the JSON it carries.
A model call is always the same thing: POST a JSON body, read one JSON response. This client does
exactly that over pooled keep-alive connections and nothing else (no redirects, no cookies, no
proxies, no compression); https:// endpoints keep using aiohttp (``model.OpenAIChatClient``).

Errors: ``ConnectionFailed`` for anything on the wire (refused, reset, closed mid-response,
malformed response); the caller turns it into a retryable model error. A request that finds
its reused keep-alive connection closed by the server before any byte of a response (the server's
idle timeout racing this request) is sent again once on a new connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit

MAX_HEADER_BYTES = 64 * 1024


class ConnectionFailed(Exception):
    pass


class _Stale(Exception):
    """A reused connection turned out closed before any of the response arrived."""


class Http1Client:
    def __init__(self, url: str, headers: dict[str, str]) -> None:
        u = urlsplit(url)
        if u.scheme != "http" or not u.hostname:
            raise ValueError(f"Http1Client serves http:// URLs only, not {url!r}")
        self.host = u.hostname
        self.port = u.port or 80
        path = (u.path or "/") + (f"?{u.query}" if u.query else "")
        host_header = u.hostname if u.port is None else f"{u.hostname}:{u.port}"
        if ":" in u.hostname and not host_header.startswith("["):  # IPv6 literal
            host_header = f"[{u.hostname}]" + (f":{u.port}" if u.port else "")
        lines = [f"POST {path} HTTP/1.1", f"Host: {host_header}", "Accept: application/json", "Connection: keep-alive"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self._head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._closed = False

    async def post(self, body: bytes) -> tuple[int, bytes]:
        """POST ``body``; returns (status, response body). The caller bounds the time (asyncio.timeout)."""
        request = self._head + str(len(body)).encode() + b"\r\n\r\n" + body
        while self._idle:
            reader, writer = self._idle.pop()
            if reader.at_eof() or writer.is_closing():
                writer.close()
                continue
            try:
                return await self._exchange(reader, writer, request, reused=True)
            except _Stale:
                continue
        reader, writer = await self._connect()
        try:
            return await self._exchange(reader, writer, request, reused=False)
        except _Stale as e:  # not reused: cannot happen, but never loop on it
            raise ConnectionFailed("connection closed before the response") from e

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            return await asyncio.open_connection(self.host, self.port, limit=MAX_HEADER_BYTES)
        except OSError as e:
            raise ConnectionFailed(f"cannot connect to {self.host}:{self.port}: {e}") from e

    async def _exchange(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes, *, reused: bool) -> tuple[int, bytes]:
        keep = False
        try:
            try:
                writer.write(request)
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, OSError) as e:  # OSError: resets, broken pipes
                got = e.partial if isinstance(e, asyncio.IncompleteReadError) else b""
                if reused and not got:
                    raise _Stale() from e
                raise ConnectionFailed(f"connection lost before the response: {e}") from e
            status, headers = _parse_head(head)
            while status in (100, 102, 103):  # interim responses: the real one follows
                status, headers = _parse_head(await reader.readuntil(b"\r\n\r\n"))
            length = headers.get("content-length")
            if status in (204, 304):
                body = b""
            elif "chunked" in headers.get("transfer-encoding", "").lower():
                body = await self._read_chunked(reader)
            elif length is not None:
                body = await reader.readexactly(int(length))
            else:  # neither: the body ends when the server closes the connection
                return status, await reader.read()
            keep = "close" not in headers.get("connection", "").lower()
            return status, body
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError, ValueError) as e:
            raise ConnectionFailed(f"bad or cut response: {type(e).__name__}: {e}") from e
        finally:
            # Anything but a complete response (errors, timeouts, cancellation) closes the
            # connection: a half-read response must never be mistaken for the next one.
            if keep and not self._closed:
                self._idle.append((reader, writer))
            else:
                writer.close()

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        out = bytearray()
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                    pass
                return bytes(out)
            out += await reader.readexactly(size + 2)
            del out[-2:]

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for _, writer in idle:
            writer.close()
        for _, writer in idle:
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _parse_head(head: bytes) -> tuple[int, dict[str, str]]:
    """Status and headers (lower-case names) of a response head ending in an empty line."""
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(None, 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1."):
        raise ValueError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return int(parts[1]), headers
