"""The HTTP tool against real servers on 127.0.0.1: what an endpoint answers cannot send the
tool (and its Secret's headers) elsewhere, nor make it read an unbounded body into memory."""

from __future__ import annotations

import ipaddress
import socket
import time

import pytest
from aiohttp import web
from runtime_helpers import arun

from agentfleet_runtime.core.types import Limits, Status, TaskRecord
from agentfleet_runtime.tools.base import ToolContext, ToolError
from agentfleet_runtime.tools.http import HTTPTool, denied_networks

pytestmark = pytest.mark.integration

SECRET = {"Authorization": "Bearer s3cret"}
MB = 1024 * 1024


def _ctx() -> ToolContext:
    far = time.time() + 3600
    return ToolContext(
        TaskRecord(id="t1", goal="g", status=Status.RUNNING, limits=Limits(), created_at=0, deadline=far, root="t1"),
        0,
        0,
        far,
    )


async def _serve(routes: dict[str, object]) -> tuple[web.AppRunner, str]:
    app = web.Application()
    for path, handler in routes.items():
        app.router.add_route("*", path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"


def _recorder(seen: list[dict[str, str]], text: str = "metadata: role credentials"):
    async def handler(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.Response(text=text)

    return handler


def _redirect(location: str, status: int = 302):
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, headers={"Location": location})

    return handler


def test_a_redirect_to_a_metadata_path_is_not_followed_by_default():
    async def body() -> None:
        hits: list[dict[str, str]] = []
        runner, base = await _serve(
            {
                "/tool": _redirect("/latest/meta-data/iam/security-credentials/"),
                "/latest/meta-data/{rest:.*}": _recorder(hits),
            }
        )
        tool = HTTPTool("lookup", base + "/tool", headers=dict(SECRET))
        try:
            with pytest.raises(ToolError, match="redirect") as e:
                await tool.run({"q": "x"}, _ctx())
            assert not e.value.unhealthy, "a redirect is the endpoint's answer, not a tool outage"
            assert hits == [], "the metadata-like path was reached"
        finally:
            await tool.close()
            await runner.cleanup()

    arun(body(), 30)


def test_same_origin_redirects_are_followed_without_the_secret_headers_and_others_not_at_all():
    async def body() -> None:
        moved: list[dict[str, str]] = []
        elsewhere: list[dict[str, str]] = []
        other, other_base = await _serve({"/steal": _recorder(elsewhere)})
        runner, base = await _serve(
            {
                "/tool": _redirect("/moved", 307),
                "/moved": _recorder(moved, "moved here"),
                "/away": _redirect(other_base + "/steal"),
            }
        )
        follow = HTTPTool("lookup", base + "/tool", headers=dict(SECRET), follow_redirects="SameOrigin")
        away = HTTPTool("lookup", base + "/away", headers=dict(SECRET), follow_redirects="SameOrigin")
        try:
            assert await follow.run({"q": "x"}, _ctx()) == "moved here"
            assert len(moved) == 1 and "Authorization" not in moved[0], (
                "the Secret's header went to the redirect's target"
            )
            assert moved[0]["X-Agentfleet-Task"] == "t1"
            with pytest.raises(ToolError, match="another origin"):
                await away.run({"q": "x"}, _ctx())
            assert elsewhere == []
        finally:
            for t in (follow, away):
                await t.close()
            await runner.cleanup()
            await other.cleanup()

    arun(body(), 30)


def test_a_64_mb_body_is_cut_at_the_cap_and_never_read_whole():
    sent = [0]
    chunk = b"x" * MB

    async def huge(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
        resp.content_length = 64 * MB
        await resp.prepare(request)
        try:
            for _ in range(64):
                await resp.write(chunk)
                sent[0] += len(chunk)
        except (ConnectionResetError, ConnectionError, RuntimeError):
            pass  # the tool hung up: what it did not read was never sent
        return resp

    async def body() -> str:
        runner, base = await _serve({"/big": huge})
        tool = HTTPTool("lookup", base + "/big", method="GET", max_response_bytes=MB)
        try:
            return await tool.run({}, _ctx())
        finally:
            await tool.close()
            await runner.cleanup()

    out = arun(body(), 60)
    assert out.startswith("x" * 100) and out.endswith(f"[truncated: the response was longer than {MB} bytes]")
    assert len(out) < MB + 200
    # Loopback socket buffers hold a few MB; the old tool read all 64.
    assert sent[0] <= 16 * MB, f"the server got {sent[0] / MB:.0f} MB out: the body was read beyond the cap"


def test_the_connect_timeout_bounds_a_host_that_never_accepts():
    # A listening socket whose accept queue is full: the kernel drops further SYNs, so a connect
    # hangs as it would towards a firewalled address.
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(4):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        fillers.append(s)

    async def body() -> float:
        tool = HTTPTool("slow", f"http://127.0.0.1:{port}/x", connect_timeout=1.0)
        start = time.monotonic()
        try:
            with pytest.raises(ToolError, match="unreachable"):
                await tool.run({}, _ctx())
            return time.monotonic() - start
        finally:
            await tool.close()

    try:
        took = arun(body(), 20)
    finally:
        for s in [*fillers, server]:
            s.close()
    assert took < 5, f"the connect took {took:.1f} s against a 1 s connect timeout"


def test_metadata_and_denied_addresses_are_refused_by_literal_and_by_name():
    async def body() -> None:
        hits: list[dict[str, str]] = []
        runner, base = await _serve({"/x": _recorder(hits)})
        port = base.rsplit(":", 1)[1]
        loopback = (ipaddress.ip_network("127.0.0.0/8"),)
        literal = HTTPTool("meta", "http://169.254.169.254/latest/meta-data/", connect_timeout=1.0)
        by_name = HTTPTool("named", f"http://localhost:{port}/x", denied=(*denied_networks({}), *loopback))
        mapped = HTTPTool("mapped", f"http://[::ffff:127.0.0.1]:{port}/x", denied=loopback)
        try:
            for tool, why in ((literal, "may not reach"), (by_name, "unreachable"), (mapped, "may not reach")):
                with pytest.raises(ToolError, match=why):
                    await tool.run({}, _ctx())
            assert hits == []
        finally:
            for t in (literal, by_name, mapped):
                await t.close()
            await runner.cleanup()

    arun(body(), 30)


def test_denied_networks_name_metadata_the_api_server_and_the_configured_cidrs():
    nets = {
        str(n)
        for n in denied_networks(
            {"KUBERNETES_SERVICE_HOST": "10.96.0.1", "AGENTFLEET_EGRESS_DENY": "172.18.0.2/32, 10.0.0.0/24"}
        )
    }
    assert {"169.254.0.0/16", "fd00:ec2::254/128", "10.96.0.1/32", "172.18.0.2/32", "10.0.0.0/24"} <= nets
    with pytest.raises(ValueError, match="AGENTFLEET_EGRESS_DENY"):
        denied_networks({"AGENTFLEET_EGRESS_DENY": "not-a-cidr"})
