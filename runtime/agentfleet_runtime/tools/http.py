"""HTTP tools declared in the AgentFleet spec: JSON arguments in, response text out.

The URL comes from the fleet's author, but what the endpoint answers does not: a redirect is not
followed unless the author asked for same-origin ones (and then without the Secret's headers),
the body is read only up to a byte cap, and the tool never connects to link-local metadata
addresses or the API server, whatever a name resolves to.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
from agentfleet_contract.gate import DRY_RUN_HEADER
from agentfleet_contract.runtime_config import EGRESS_DENY_ENV
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from yarl import URL

from agentfleet_runtime.model.prompt import tool_schema
from agentfleet_runtime.tools.base import ToolContext, ToolError
from agentfleet_runtime.tools.trust import SYSTEM, Trust, certificate_hint

DEFAULT_PARAMETERS = {"type": "object", "properties": {}, "additionalProperties": True}
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
READ_CHUNK = 64 * 1024
# Cloud metadata services (AWS, GCP, Azure: 169.254.169.254; AWS IPv6: fd00:ec2::254; Alibaba:
# 100.100.100.200; Oracle: 192.0.0.192; Azure's WireServer: 168.63.129.16) and the rest of
# link-local: credentials of the node live there.
METADATA_NETWORKS = (
    "169.254.0.0/16",
    "fe80::/10",
    "fd00:ec2::254/128",
    "100.100.100.200/32",
    "192.0.0.192/32",
    "168.63.129.16/32",
)
# IPv6 prefixes that carry an IPv4 address a gateway reaches for the caller: NAT64's well-known
# and local-use prefixes (RFC 6052, 8215) and 6to4. Their embedded address is checked too.
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def denied_networks(env: dict[str, str] | None = None) -> tuple[Network, ...]:
    """Metadata ranges, the API server's Service IP (KUBERNETES_SERVICE_HOST, set in every pod)
    and the CIDRs of AGENTFLEET_EGRESS_DENY."""
    env = dict(os.environ) if env is None else env
    entries = [*METADATA_NETWORKS, env.get("KUBERNETES_SERVICE_HOST", ""), *env.get(EGRESS_DENY_ENV, "").split(",")]
    nets: list[Network] = []
    for entry in (e.strip() for e in entries):
        if not entry:
            continue
        try:
            nets.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as e:
            raise ValueError(f"{EGRESS_DENY_ENV}: {entry!r} is not an IP address or CIDR") from e
    return tuple(nets)


def is_denied(host: str, denied: Iterable[Network]) -> bool:
    """Whether ``host`` is an IP literal inside one of ``denied`` (names are checked once resolved)."""
    try:
        ip = ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        elif ip.sixtofour is not None:
            ip = ip.sixtofour
        elif any(ip in n for n in NAT64):
            ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return any(ip.version == n.version and ip in n for n in denied)


class GuardedResolver(AbstractResolver):
    """Resolves names, then drops the denied addresses: a name that resolves to a metadata
    address (or is rebound to one later) is refused at connect time, not only when checked."""

    def __init__(self, denied: tuple[Network, ...]) -> None:
        self._inner = DefaultResolver()
        self._denied = denied

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        addresses = await self._inner.resolve(host, port, family)
        allowed = [a for a in addresses if not is_denied(a["host"], self._denied)]
        if not allowed:
            raise OSError(f"{host} resolves only to addresses tools may not reach")
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def load_headers(headers_dir: str | None, tool_name: str) -> dict[str, str]:
    """Extra headers of a tool from ``<headers_dir>/<tool name>`` (a JSON object), if present.

    The operator mounts the Secret named by spec.tools[].http.headersSecretRef there.
    """
    if not headers_dir:
        return {}
    path = Path(headers_dir) / tool_name
    if not path.exists():
        return {}
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: tool headers must be a JSON object")
    return {str(k): str(v) for k, v in data.items()}


async def read_capped(resp: aiohttp.ClientResponse, cap: int) -> tuple[bytes, bool]:
    """At most ``cap`` bytes of the body, and whether there was more. The rest is never read: the
    caller closes the connection, so a 64 MB answer costs a few chunks, not 64 MB of memory."""
    buf = bytearray()
    async for chunk in resp.content.iter_chunked(READ_CHUNK):
        room = cap - len(buf)
        if len(chunk) > room:
            buf += chunk[:room]
            return bytes(buf), True
        buf += chunk
    return bytes(buf), False


def _decode(raw: bytes, charset: str | None) -> str:
    try:
        return raw.decode(charset or "utf-8", errors="replace")  # a cut may split a character
    except LookupError:
        return raw.decode("utf-8", errors="replace")


class HTTPTool:
    def __init__(
        self,
        name: str,
        url: str,
        *,
        method: str = "POST",
        description: str = "",
        parameters: dict[str, Any] | None = None,
        timeout: float = 30.0,
        side_effects: bool = False,
        headers: dict[str, str] | None = None,
        follow_redirects: str = "Never",
        max_response_bytes: int = 1024 * 1024,
        connect_timeout: float = 5.0,
        denied: tuple[Network, ...] | None = None,
        session_factory: Any = None,
        trust: Trust = SYSTEM,
    ) -> None:
        self.name = name
        self.url = url
        self.method = method
        self.description = description or f"Calls {url}"
        self.parameters = parameters or DEFAULT_PARAMETERS
        self.timeout = timeout
        self.side_effects = side_effects
        self.dry_run_header = True  # an evaluation gate may call it marked as a dry run (DRY_RUN_HEADER)
        # A call that changes nothing is a read: an identical repeat within a task only copies its
        # result, already in the history, so after such a repeat the model may only answer (the
        # repeat guard in decisions.offer). Qwen2.5-Coder-1.5B otherwise called one lookup with
        # the same arguments until the step budget ended the task (6 of 6 steps, seen).
        self.read_only = not side_effects
        self.headers = headers or {}
        self.follow_redirects = follow_redirects
        self.max_response_bytes = max_response_bytes
        self.connect_timeout = connect_timeout
        self.denied = denied_networks() if denied is None else denied
        self._session_factory = session_factory
        self.trust = trust
        self._session: aiohttp.ClientSession | None = None

    def schema(self) -> dict[str, Any]:
        return tool_schema(self.name, self.description, self.parameters)

    def _http(self) -> aiohttp.ClientSession:
        if self._session_factory is not None:
            return self._session_factory()
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, resolver=GuardedResolver(self.denied), ssl=self.trust.verify)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    def _redirect_target(self, url: URL, resp: aiohttp.ClientResponse, hop: int) -> URL:
        """Where a redirect may be followed to, or the ToolError that ends the call there."""
        target = url.join(URL(resp.headers["Location"]))
        where = str(target)[:200]
        if self.follow_redirects != "SameOrigin":
            raise ToolError(
                f"{self.name} answered HTTP {resp.status}, a redirect to {where}; redirects are not followed "
                "(spec.tools[].http.followRedirects: SameOrigin follows those to the same origin)",
                unhealthy=False,
            )
        if target.origin() != url.origin():
            raise ToolError(
                f"{self.name} redirected to another origin ({where}); only same-origin redirects are followed",
                unhealthy=False,
            )
        if hop >= MAX_REDIRECTS:
            raise ToolError(f"{self.name} redirected more than {MAX_REDIRECTS} times", unhealthy=False)
        return target

    async def run(self, arguments: dict[str, Any], ctx: ToolContext) -> str:
        self.trust.refresh()  # a renewed CA file is trusted from the next call on (tools/trust.py)
        if self.trust.problem:
            # The author's setting, not the endpoint's health: the model reads why, every time.
            raise ToolError(f"{self.name} was not called: {self.trust.problem}", unhealthy=False)
        headers = {**self.headers, "X-Agentfleet-Task": ctx.task.id}
        if self.side_effects:
            headers["Idempotency-Key"] = ctx.idempotency_key
        if ctx.dry_run:
            headers[DRY_RUN_HEADER] = "true"  # an evaluation gate's call: the endpoint acts as if
        kwargs: dict[str, Any] = {"headers": headers}
        if self.method == "GET":
            kwargs["params"] = {k: v if isinstance(v, str) else json.dumps(v) for k, v in arguments.items()}
        else:
            kwargs["json"] = arguments
        method, url = self.method, URL(self.url)
        # The whole call is bounded by the tool box (the tool's timeoutSeconds); this bounds the connect.
        timeout = aiohttp.ClientTimeout(total=None, connect=self.connect_timeout, sock_connect=self.connect_timeout)
        try:
            for hop in range(MAX_REDIRECTS + 1):
                if is_denied(url.host or "", self.denied):
                    raise ToolError(
                        f"{self.name} may not reach {url.host} (a metadata or API server address)", unhealthy=False
                    )
                async with self._http().request(method, url, allow_redirects=False, timeout=timeout, **kwargs) as resp:
                    if resp.status in REDIRECTS and "Location" in resp.headers:
                        url = self._redirect_target(url, resp, hop)
                        # The Secret's headers were meant for the URL the author wrote, not for
                        # whatever path the endpoint names: they are not sent again.
                        kept = {k: v for k, v in headers.items() if k not in self.headers}
                        kwargs = {"headers": kept}
                        if resp.status == 303 or (resp.status in (301, 302) and method != "GET"):
                            method = "GET"
                        elif method != "GET":
                            kwargs["json"] = arguments  # 307/308 repeat the request with its body
                        continue
                    raw, cut = await read_capped(resp, self.max_response_bytes)
                    if cut:
                        resp.close()  # the rest stays unread: drop the connection, never pool it
                    body = _decode(raw, resp.charset)
                    if resp.status >= 500:
                        raise ToolError(f"{self.name} failed with HTTP {resp.status}: {body[:500]}")
                    if resp.status >= 400:
                        raise ToolError(
                            f"{self.name} refused the call with HTTP {resp.status}: {body[:500]}", unhealthy=False
                        )
                    if cut:
                        body += f"\n[truncated: the response was longer than {self.max_response_bytes} bytes]"
                    return body
            raise AssertionError("unreachable: the loop returns or raises")
        except aiohttp.ClientError as e:
            hint = certificate_hint(e, "spec.tools[].http.caSecretRef")
            raise ToolError(f"{self.name} is unreachable: {e}{hint}") from e
