"""MCP tools: an MCP server's tools, discovered by listing them, called through the ``mcp`` SDK.

One ``MCPServer`` per spec tool of type MCP and per worker process holds one session to the
server (streamable HTTP, or stdio to a command started in the worker's container). A background
task owns the session (the SDK's transports are anyio context managers that must be left by the
task that entered them): it connects, lists the tools, lists them again when the server sends
notifications/tools/list_changed, pings while idle, and reconnects with backoff when the session
fails. Calls from the agent loops share the session; nothing waits on the server except the call
itself, bounded by the tool's timeout.

The ToolBox treats a server as a source of tools (``provides_tools``): it asks for ``tools`` and
is told through ``on_change`` when they change; tasks started after a change see the new list.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import random
import socket
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from agentfleet_runtime.model.prompt import tool_schema
from agentfleet_runtime.tools.base import ToolContext, ToolError
from agentfleet_runtime.tools.http import Network, denied_networks, is_denied
from agentfleet_runtime.tools.mcp_catalog import Entry, catalog, clean_text, result_text
from agentfleet_runtime.tools.trust import SYSTEM, Trust, TrustError, certificate_hint

log = logging.getLogger("agentfleet_runtime.tools.mcp")

CONNECT_TIMEOUT_SECONDS = 10.0
PING_INTERVAL_SECONDS = 15.0
MAX_BACKOFF_SECONDS = 30.0
MAX_LIST_PAGES = 16
# Read off a server's result before it reaches the ToolBox, which cuts the observation to
# maxObservationChars itself: no need to join a megabyte of text first.
MAX_RESULT_CHARS = 65_536
# A stdio server is started through this launcher. The SDK already gives it only PATH, HOME and
# the like, but the worker's own environment (the model API key, the Redis password) stays
# readable at /proc/<worker>/environ to any process of the worker's uid. A non-root worker (the
# pod's case) makes itself non-dumpable at start (``deny_proc_access``): that file becomes
# root's and no process of its uid may ptrace it. A worker running as root (a developer's
# machine) cannot be protected that way, so the server starts in its own PID and mount
# namespaces with a fresh /proc, where the worker is not a process it can name.
# The worker's mounted Secret files (the tool headers' bearer tokens, the tracing headers, the
# API's token hashes: ``--hide``) are files of its own uid, which a server of that uid could read:
# the launcher takes them away before it starts the server, with Landlock (an unprivileged
# process may restrict what it and its children may read: everything but those directories),
# and as root also by mounting an empty tmpfs over each in its private mount namespace. Where it
# can do neither it does not start the server.
JAIL = """
import ctypes, os, signal, sys
args = sys.argv[1:]
hide = []
if args[:1] == ["--hide"]:
    hide = [h for h in args[1].split(os.pathsep) if h]
    args = args[2:]
cmd = args
libc = ctypes.CDLL(None, use_errno=True)
def refuse(why):
    print("agentfleet: " + why + "; not starting the MCP server", file=sys.stderr)
    os._exit(70)
if os.getuid() == 0:
    if libc.unshare(0x20000000 | 0x00020000) == 0:  # CLONE_NEWPID | CLONE_NEWNS
        pid = os.fork()
        if pid:
            def stop(n, f):
                os.kill(pid, signal.SIGKILL)  # the server is its namespace's init: SIGTERM is ignored
            for n in (signal.SIGTERM, signal.SIGINT):
                signal.signal(n, stop)
            code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            os._exit(code if code >= 0 else 128 - code)
        libc.prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL: it ends with the launcher
        libc.mount(None, b"/", None, 0x4000 | 0x40000, None)  # MS_REC | MS_PRIVATE: nothing leaks out
        if libc.mount(b"proc", b"/proc", b"proc", 0, None) != 0:
            os._exit(70)  # no private /proc: do not run the server where it could read the worker's
        for h in hide:
            if os.path.isdir(h) and libc.mount(b"tmpfs", os.fsencode(h), b"tmpfs", 1, b"size=4k") != 0:
                refuse("cannot hide " + h)  # 1: MS_RDONLY
    else:
        refuse("cannot isolate it (unshare refused)")
hidden = sorted({os.path.realpath(h) for h in hide if os.path.exists(h)})
if hidden:
    READ_FILE, READ_DIR = 1 << 2, 1 << 3
    if libc.syscall(444, None, 0, 1) < 1:  # landlock_create_ruleset(NULL, 0, VERSION): its ABI
        refuse("Landlock is unavailable, so the worker's Secret files cannot be hidden from it")
    attr = ctypes.c_uint64(READ_FILE | READ_DIR)
    rs = libc.syscall(444, ctypes.byref(attr), 8, 0)
    if rs < 0:
        refuse("Landlock refused a ruleset")
    class Beneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed", ctypes.c_uint64), ("fd", ctypes.c_int32)]
    def allow(path, access):
        try:
            fd = os.open(path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return
        libc.syscall(445, rs, 1, ctypes.byref(Beneath(access, fd)), 0)  # LANDLOCK_RULE_PATH_BENEATH
        os.close(fd)
    def walk(d):
        allow(d, READ_DIR)  # an ancestor of a hidden directory: its names, not its files
        for name in os.listdir(d):
            p = os.path.join(d, name)
            if p in hidden:
                continue
            if any(h.startswith(p.rstrip("/") + "/") for h in hidden) and os.path.isdir(p) and not os.path.islink(p):
                walk(p)
            else:
                allow(p, READ_FILE | READ_DIR)
    walk("/")
    if libc.prctl(38, 1, 0, 0, 0) != 0 or libc.syscall(446, rs, 0) != 0:  # NO_NEW_PRIVS; restrict_self
        refuse("Landlock could not restrict the server")
os.execvp(cmd[0], cmd)
"""
MAX_RESPONSE_BYTES = 8 * 1024 * 1024  # one HTTP response of a url server (a JSON reply or one SSE stream)
IDEMPOTENCY_META = "agentfleet.io/idempotency-key"
TASK_META = "agentfleet.io/task"


class MCPTool:
    """One tool of an MCP server as the ToolBox sees it."""

    def __init__(self, server: MCPServer, entry: Entry, timeout: float, context: str = "") -> None:
        self.server = server
        self.entry = entry
        self.name = entry.name
        # The spec author's description of the server, ahead of the server's own words.
        self.description = f"{context} {entry.description}".strip()
        self.parameters = entry.parameters
        self.timeout = timeout
        self.side_effects = entry.side_effects
        self.read_only = not entry.side_effects  # the repeat guard, as for HTTP tools

    def schema(self) -> dict[str, Any]:
        return tool_schema(self.name, self.description, self.parameters)

    async def run(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        meta = {TASK_META: ctx.task.id}
        if self.side_effects:
            meta[IDEMPOTENCY_META] = ctx.idempotency_key
        return await self.server.call(self.entry.remote, arguments, meta, self.timeout)


class MCPServer:
    provides_tools = True  # the ToolBox asks for ``tools`` and listens to ``on_change``

    def __init__(
        self,
        name: str,
        *,
        url: str | None = None,
        headers: dict[str, str] | None = None,
        command: Sequence[str] | None = None,
        env: dict[str, str] | None = None,
        description: str = "",
        allow: Sequence[str] = (),
        read_only: Sequence[str] = (),
        max_tools: int = 32,
        timeout: float = 30.0,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        ping_interval: float = PING_INTERVAL_SECONDS,
        denied: tuple[Network, ...] | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        hidden: Sequence[str] = (),
        trust: Trust = SYSTEM,
    ) -> None:
        if (url is None) == (not command):
            raise ValueError(f"MCP tool {name}: give exactly one of url and command")
        self.name = name
        self.url = url
        self.headers = headers or {}
        self.command = list(command or [])
        self.env = env or {}
        self.description = description
        self.allow = tuple(allow)
        self.read_only = tuple(read_only)
        self.max_tools = max_tools
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.ping_interval = ping_interval
        # A url server gets the HTTP tool's egress guards: no metadata or API server address
        # (by literal or once resolved), no redirects, and a byte cap on every response.
        self.denied = denied_networks() if denied is None else denied
        self.max_response_bytes = max_response_bytes
        # Directories of the worker's mounted Secret files a stdio server may not read (JAIL).
        self.hidden = tuple(hidden)
        self.trust = trust
        self.tools: list[MCPTool] = []
        self.skipped: list[str] = []
        self.on_change: Callable[[], None] | None = None
        self.taken: Callable[[], Sequence[str]] = tuple  # the fleet's other tool names (set by the ToolBox)
        self.last_error = "not connected yet"
        self.connects = 0
        self.listings = 0
        self._session: Any = None
        self._connected = asyncio.Event()
        self._wake = asyncio.Event()
        self._relist = False
        self._dead = False
        self._closing = False
        self._runner: asyncio.Task[None] | None = None

    # -- the ToolBox's side ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Connect in the background; wait for the first listing at most ``connect_timeout``, so a
        worker's first tasks see the tools and a server that is down delays the worker only that long."""
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(self._run(), name=f"mcp-{self.name}")
        if self.trust.problem:
            # An unusable CA file: the server's tools stay unlisted and the log names the field to
            # fix; the runner keeps trying, and each try reads the file again (tools/trust.py).
            self.last_error = self.trust.problem
            log.error("MCP server not connected", extra={"tool": self.name, "error": self.last_error})
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._connected.wait(), self.connect_timeout)

    async def close(self) -> None:
        self._closing = True
        self._wake.set()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._runner

    async def call(self, remote: str, arguments: dict[str, Any], meta: dict[str, Any], timeout: float) -> str:
        from mcp.shared.exceptions import MCPError
        from mcp_types import CONNECTION_CLOSED, INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND

        session = self._session
        if session is None:
            raise ToolError(f"MCP server {self.name} is unreachable ({self.last_error}); the worker keeps reconnecting")
        try:
            result = await session.call_tool(remote, arguments, read_timeout_seconds=timeout, meta=meta)
        except MCPError as e:
            if e.code == CONNECTION_CLOSED:
                self._fail("connection closed")
                raise ToolError(f"MCP server {self.name} closed the connection during the call") from e
            caller = e.code in (INVALID_PARAMS, INVALID_REQUEST, METHOD_NOT_FOUND)
            raise ToolError(f"{self.name} refused the call: {clean_text(e.message, 2000)}", unhealthy=not caller) from e
        except (asyncio.CancelledError, TimeoutError):
            raise
        except Exception as e:  # the transport failed: the session is suspect, start a new one
            self._fail(f"{type(e).__name__}: {e}")
            raise ToolError(f"MCP server {self.name} is unreachable: {type(e).__name__}: {e}") from e
        text = result_text(result.content, result.structured_content, MAX_RESULT_CHARS)
        if result.is_error:
            # The tool ran and said no (bad arguments, a missing file): the model reads why; the server is fine.
            raise ToolError(text or f"{remote} failed without saying why", unhealthy=False)
        return text

    # -- the session's owner ------------------------------------------------------------------------
    async def _run(self) -> None:
        delay = 0.5
        while not self._closing:
            try:
                async with self._open() as session:
                    self.connects += 1
                    delay = 0.5
                    await self._serve(session)
            except asyncio.CancelledError:
                raise
            except TrustError as e:
                self.last_error = str(e)  # the field and the fix, as the log said at start
            except Exception as e:  # an ExceptionGroup from the SDK's task groups too
                self.last_error = _describe(e)
                self.last_error += certificate_hint(self.last_error, "spec.tools[].mcp.caSecretRef")
                log.warning("MCP server session ended", extra={"tool": self.name, "error": self.last_error})
            finally:
                self._session = None
                self._connected.clear()
            if self._closing:
                return
            await asyncio.sleep(delay * random.uniform(0.8, 1.2))
            delay = min(MAX_BACKOFF_SECONDS, delay * 2)

    @contextlib.asynccontextmanager
    async def _open(self) -> AsyncIterator[Any]:
        from mcp.client.session import ClientSession
        from mcp_types import Implementation

        async with contextlib.AsyncExitStack() as stack:
            if self.url is not None:
                from mcp.client.streamable_http import streamable_http_client

                self.trust.refresh()
                if self.trust.problem:
                    raise TrustError(self.trust.problem)
                http = await stack.enter_async_context(
                    guarded_client(self.headers, self.denied, self.max_response_bytes, self.trust)
                )
                read, write = await stack.enter_async_context(streamable_http_client(self.url, http_client=http))
            else:
                from mcp.client.stdio import StdioServerParameters, stdio_client

                hide = ["--hide", os.pathsep.join(self.hidden)] if self.hidden else []
                params = StdioServerParameters(
                    command=sys.executable, args=["-I", "-c", JAIL, *hide, *self.command], env=self.env, cwd="/"
                )
                read, write = await stack.enter_async_context(stdio_client(params))
            session = await stack.enter_async_context(
                ClientSession(
                    read,
                    write,
                    message_handler=self._on_message,
                    client_info=Implementation(name="agentfleet", version="0.1.0"),
                )
            )
            async with asyncio.timeout(self.connect_timeout):
                await session.initialize()
            yield session

    async def _serve(self, session: Any) -> None:
        self._dead = False
        self._relist = True
        while not self._closing:
            if self._dead:
                raise ConnectionError(self.last_error)
            if self._relist:
                self._relist = False
                async with asyncio.timeout(self.connect_timeout):
                    await self._list(session)
                self._session = session
                self._connected.set()
            self._wake.clear()
            try:
                async with asyncio.timeout(self.ping_interval):
                    await self._wake.wait()
            except TimeoutError:
                async with asyncio.timeout(self.connect_timeout):
                    await session.send_ping()

    async def _list(self, session: Any) -> None:
        from mcp_types import PaginatedRequestParams

        listed: list[tuple[str, str | None, dict[str, Any] | None]] = []
        cursor = None
        for _ in range(MAX_LIST_PAGES):
            page = await session.list_tools(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
            listed += [(t.name, t.description, t.input_schema) for t in page.tools]
            cursor = page.next_cursor
            if not cursor:
                break
        entries, self.skipped = catalog(
            self.name, listed, allow=self.allow, read_only=self.read_only, max_tools=self.max_tools, taken=self.taken()
        )
        self.tools = [MCPTool(self, e, self.timeout, self.description) for e in entries]
        self.listings += 1
        log.info(
            "MCP tools listed",
            extra={
                "tool": self.name,
                "listed": len(listed),
                "offered": [t.name for t in self.tools],
                "skipped": self.skipped,
            },
        )
        if self.on_change is not None:
            self.on_change()

    async def _on_message(self, message: Any) -> None:
        from mcp_types import ToolListChangedNotification

        if isinstance(message, ToolListChangedNotification):
            self._relist = True
            self._wake.set()
        elif isinstance(message, Exception):
            self._fail(_describe(message))

    def _fail(self, why: str) -> None:
        """A call saw the transport fail: the owner task drops the session and reconnects."""
        self.last_error = why
        self._dead = True
        self._session = None
        self._wake.set()


def _describe(e: BaseException) -> str:
    while isinstance(e, BaseExceptionGroup) and len(e.exceptions) == 1:
        e = e.exceptions[0]
    return f"{type(e).__name__}: {e}"[:500]


def deny_proc_access() -> bool:
    """Make this process non-dumpable (prctl PR_SET_DUMPABLE 0): /proc/<pid>/environ and mem
    become root's, and no process of the same uid may ptrace it. False where that is not Linux."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(4, 0, 0, 0, 0) == 0  # PR_SET_DUMPABLE = 4
    except OSError:
        return False


def guarded_client(headers: dict[str, str], denied: tuple[Network, ...], cap: int, trust: Trust = SYSTEM) -> Any:
    """An httpx2 client for a url MCP server with the HTTP tool's guards (redirects stay off) and
    the tool's TLS trust (its caSecretRef's CA besides the system's; verification never off)."""
    import httpx2
    from mcp.shared._httpx_utils import MCP_DEFAULT_SSE_READ_TIMEOUT, MCP_DEFAULT_TIMEOUT

    class Capped(httpx2.AsyncByteStream):
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __aiter__(self) -> AsyncIterator[bytes]:
            seen = 0
            async for chunk in self.inner:
                seen += len(chunk)
                if seen > cap:
                    raise httpx2.ReadError(f"the MCP server's response passed {cap} bytes; not read further")
                yield chunk

        async def aclose(self) -> None:
            await self.inner.aclose()

    class Guarded(httpx2.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx2.AsyncHTTPTransport(verify=trust.verify)

        async def handle_async_request(self, request: Any) -> Any:
            host = request.url.host
            addresses = [host]
            if not is_denied(host, ()) and not _is_ip(host):
                port = request.url.port or (443 if request.url.scheme == "https" else 80)
                infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
                addresses = [str(i[4][0]) for i in infos]
            if not addresses or any(is_denied(a, denied) for a in addresses):
                raise httpx2.ConnectError(f"{host} is a metadata or API server address: MCP may not reach it")
            if addresses != [host]:
                # Connect to the address just checked, never to a second resolution of the name (DNS
                # rebinding: a name that answered a public address, then a denied one). The Host
                # header stays the name's, and so does TLS's server name and certificate check.
                request.url = request.url.copy_with(host=addresses[0])
                request.headers["Host"] = host if request.url.port is None else f"{host}:{request.url.port}"
                if request.url.scheme == "https":
                    request.extensions = {**request.extensions, "sni_hostname": host}
            resp = await self.inner.handle_async_request(request)
            return httpx2.Response(
                resp.status_code, headers=resp.headers, stream=Capped(resp.stream), extensions=resp.extensions
            )

        async def aclose(self) -> None:
            await self.inner.aclose()

    timeout = httpx2.Timeout(MCP_DEFAULT_TIMEOUT, read=MCP_DEFAULT_SSE_READ_TIMEOUT)
    return httpx2.AsyncClient(headers=headers, timeout=timeout, follow_redirects=False, transport=Guarded())


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return False
    return True
