"""A small HTTP/1.1 keep-alive client for the model calls of a worker (plain http:// only).

Why not aiohttp for this one request shape: with a thousand tasks in a worker, aiohttp's
per-request machinery (request/response objects, a writer task per request, header and payload
registries) was the largest share of a step's CPU, several times the cost of the JSON it carries.
A model call is always the same thing: POST a JSON body, read one JSON response. This client does
exactly that over pooled keep-alive connections and nothing else (no redirects, no cookies, no
proxies, no compression); https:// endpoints keep using aiohttp (``model.OpenAIChatClient``).

Each connection is an ``asyncio.Protocol`` that parses the response as its bytes arrive and
resolves one future when it is complete: a call costs one write, the reads the response needs and
one wake-up of the waiting task, with none of the stream layer's per-read coroutines, waiters and
drain calls (which were most of this client's CPU per call at a thousand tasks).

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
_INTERIM = (100, 102, 103)  # informational responses: the real one follows on the same request


class ConnectionFailed(Exception):
    pass


class _Stale(Exception):
    """A reused connection turned out closed before any of the response arrived."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request in flight on it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.reused = False
        self.got_bytes = False  # any byte of the current response arrived
        self.head: tuple[int, dict[str, str]] | None = None  # parsed head of the current response
        self.eof = False  # the server closed (or the connection broke): never reuse
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    # -- asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is None:
            self.eof = True  # bytes nobody asked for: the next response could not be told apart
            return
        self.got_bytes = True
        self._advance()

    def eof_received(self) -> bool:
        self.eof = True
        if self.waiter is not None:
            self._advance()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if self.waiter is not None:
            self._advance()
        if not self.lost.done():
            self.lost.set_result(None)

    # -- one exchange ----------------------------------------------------------------------------
    def send(self, request: bytes, reused: bool) -> asyncio.Future[tuple[int, bytes, bool]]:
        fut: asyncio.Future[tuple[int, bytes, bool]] = asyncio.get_running_loop().create_future()
        self.waiter, self.reused, self.got_bytes, self.head = fut, reused, False, None
        assert self.transport is not None
        self.transport.write(request)  # a write error closes the transport: connection_lost follows
        return fut

    def _advance(self) -> None:
        fut = self.waiter
        if fut is None:
            return
        if fut.done():  # the caller gave up (timeout, cancellation): the connection is closed by it
            self.waiter = None
            return
        try:
            done = self._parse()
        except ValueError as e:
            self.waiter = None
            fut.set_exception(ConnectionFailed(f"bad response: {e}"))
            return
        if done is not None:
            self.waiter = None
            fut.set_result(done)
        elif self.eof:
            self.waiter = None
            if self.reused and not self.got_bytes:
                fut.set_exception(_Stale())
            else:
                fut.set_exception(ConnectionFailed("connection closed before the response was complete"))

    def _parse(self) -> tuple[int, bytes, bool] | None:
        """The complete response (status, body, reusable) at the start of the buffer, or None."""
        buf = self.buf
        while self.head is None:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEADER_BYTES:
                    raise ValueError(f"response head longer than {MAX_HEADER_BYTES} bytes")
                return None
            head = _parse_head(bytes(buf[: end + 4]))
            del buf[: end + 4]
            if head[0] not in _INTERIM:
                self.head = head
        status, headers = self.head
        keep = "close" not in headers.get("connection", "").lower()
        if status in (204, 304):
            body, used = b"", 0
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            chunked = _parse_chunked(buf)
            if chunked is None:
                return None
            body, used = chunked
        elif (length := headers.get("content-length")) is not None:
            n = int(length)
            if n < 0:
                raise ValueError(f"negative Content-Length {n}")
            if len(buf) < n:
                return None
            body, used = bytes(buf[:n]), n
        else:  # neither: the body ends when the server closes the connection
            if not self.eof:
                return None
            body, used, keep = bytes(buf), len(buf), False
        del buf[:used]
        self.head = None
        # Bytes past the response, or a closed connection: not reusable.
        return status, body, keep and not buf and not self.eof

    def close(self) -> None:
        self.eof = True
        if self.transport is not None:
            self.transport.close()


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
        self._idle: list[_Connection] = []
        self._closed = False

    async def post(self, body: bytes, extra: bytes = b"") -> tuple[int, bytes]:
        """POST ``body`` (``extra``: more header lines, each ending in CRLF); returns (status, response
        body). The caller bounds the time (a timeout)."""
        request = b"%b%d\r\n%b\r\n%b" % (self._head, len(body), extra, body)
        while self._idle:
            conn = self._idle.pop()
            if conn.eof or conn.transport is None or conn.transport.is_closing():
                conn.close()
                continue
            try:
                return await self._exchange(conn, request, reused=True)
            except _Stale:
                continue
        conn = await self._connect()
        try:
            return await self._exchange(conn, request, reused=False)
        except _Stale as e:  # not reused: cannot happen, but never loop on it
            raise ConnectionFailed("connection closed before the response") from e

    async def _connect(self) -> _Connection:
        try:
            _, conn = await asyncio.get_running_loop().create_connection(_Connection, self.host, self.port)
        except OSError as e:
            raise ConnectionFailed(f"cannot connect to {self.host}:{self.port}: {e}") from e
        return conn

    async def _exchange(self, conn: _Connection, request: bytes, *, reused: bool) -> tuple[int, bytes]:
        keep = False
        try:
            status, body, keep = await conn.send(request, reused)
            return status, body
        finally:
            # Anything but a complete response (errors, timeouts, cancellation) closes the
            # connection: a half-read response must never be mistaken for the next one.
            if keep and not self._closed:
                self._idle.append(conn)
            else:
                conn.waiter = None
                conn.close()

    async def close(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        for conn in idle:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(conn.lost), 1.0)


def _parse_chunked(buf: bytearray) -> tuple[bytes, int] | None:
    """A complete chunked body at the start of ``buf``: (body, bytes used), or None if incomplete."""
    out = bytearray()
    pos = 0
    while True:
        eol = buf.find(b"\r\n", pos)
        if eol < 0:
            return None
        size = int(bytes(buf[pos:eol]).split(b";", 1)[0].strip(), 16)
        pos = eol + 2
        if size == 0:
            while True:  # trailers, up to an empty line
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    return None
                empty = eol == pos
                pos = eol + 2
                if empty:
                    return bytes(out), pos
        if len(buf) < pos + size + 2:
            return None
        out += buf[pos : pos + size]
        pos += size + 2


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
