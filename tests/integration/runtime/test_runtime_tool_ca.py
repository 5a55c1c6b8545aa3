"""Tools that trust a private CA (spec.tools[].<kind>.caSecretRef, issue 78), over real TLS connections:
a fleet's worker calls an HTTPS endpoint (HTTP tool) and a second fleet's real task API serving HTTPS
(A2A tool; real Redis, real workers), both with certificates a throwaway CA signed. Without the CA the
calls fail certificate verification as observations naming the field to set; with the CA file (as the
operator mounts it, <toolCaDir>/<tool name>.pem) they succeed; with a CA that did not sign the server's
certificate they still fail; and a trusted CA does not open an address the egress guard denies."""

from __future__ import annotations

import ipaddress
import json
import sys
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from agentfleet_contract.runtime_config import ApiTLSSettings, RuntimeConfig, token_line
from aiohttp import web
from runtime_helpers import arun, environment, free_port, running_worker
from test_runtime_api_tls import make_ca_and_server_cert
from test_runtime_mcp import HERE, call, started, step, task, until

from agentfleet_runtime.core.types import Limits, Status, TaskRecord
from agentfleet_runtime.server.api import TaskAPI
from agentfleet_runtime.server.tls import server_context
from agentfleet_runtime.tools.base import ToolContext, ToolError
from agentfleet_runtime.tools.http import HTTPTool
from agentfleet_runtime.tools.mcp import MCPServer
from agentfleet_runtime.tools.trust import tool_trust
from e2e.harness.ports import port_open
from e2e.harness.procs import Proc

pytestmark = pytest.mark.integration

TOKEN = "tok-acme-ca"
REF = {"name": "team-b-ca", "key": "ca.crt"}


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    """The CA that signed the servers' certificate (for 127.0.0.1), and another CA that did not."""
    (tmp_path / "signer").mkdir()
    (tmp_path / "other").mkdir()
    ca, cert, key = make_ca_and_server_cert(tmp_path / "signer")
    other_ca, _, _ = make_ca_and_server_cert(tmp_path / "other")
    return {"ca": ca, "cert": cert, "key": key, "other_ca": other_ca}


@asynccontextmanager
async def https_site(app: web.Application, pki: dict[str, Path]):
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1)
    await runner.setup()
    port = free_port()
    tls = ApiTLSSettings(certFile=str(pki["cert"]), keyFile=str(pki["key"]))
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=server_context(tls)).start()
    try:
        yield f"https://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def tool_ctx() -> ToolContext:
    """A running task's context with an hour left, for calling a tool directly."""
    far = time.time() + 3600
    rec = TaskRecord(id="t1", goal="g", status=Status.RUNNING, limits=Limits(), created_at=0, deadline=far, root="t1")
    return ToolContext(rec, 0, 0, far)


def lookup_app(hits: list[str] | None = None) -> web.Application:
    async def lookup(request: web.Request) -> web.Response:
        if hits is not None:
            hits.append(request.host)
        return web.Response(text=f"ticket 42 is open (asked {await request.text()})")

    app = web.Application()
    app.router.add_post("/lookup", lookup)
    return app


@asynccontextmanager
async def tls_task_api(config: RuntimeConfig, tmp_path: Path, pki: dict[str, Path]):
    """Fleet B's task API (the runtime's own server) on HTTPS, one tenant's token."""
    tokens = tmp_path / "b-tokens"
    tokens.write_text(token_line("acme", TOKEN) + "\n")
    doc = config.model_dump(by_alias=True, mode="json")
    doc["api"] = {**doc["api"], "tokensFile": str(tokens)}
    server = TaskAPI(RuntimeConfig.model_validate(doc))
    try:
        async with https_site(server.app(), pki) as base:
            yield base
    finally:
        server.closing = True


def goal(tool: str, args: dict[str, Any]) -> str:
    return f"ask #steps=2 #tool={tool} #args={json.dumps(args, separators=(',', ':'))} #answer=It_is_so."


def place_ca(ca_dir: Path, tool: str, pem: Path) -> dict[str, str]:
    """What the operator mounts for a tool's caSecretRef: the Secret key as <toolCaDir>/<tool>.pem."""
    (ca_dir / f"{tool}.pem").write_bytes(pem.read_bytes())
    return REF


def test_http_and_a2a_tools_trust_exactly_the_ca_they_are_given(redis_server, tmp_path, pki):
    fleet_a, fleet_b = "ca" + uuid.uuid4().hex[:9], "cb" + uuid.uuid4().hex[:9]
    ca_dir, headers_dir = tmp_path / "tool-ca", tmp_path / "tool-headers"
    ca_dir.mkdir()
    headers_dir.mkdir()

    async def body() -> None:
        async with (
            https_site(lookup_app(), pki) as lookup_base,
            environment(redis_server.url, fleet_b, a2a={}) as b,
            tls_task_api(b.config, tmp_path, pki) as b_base,
            running_worker(b.config),
        ):
            tools: list[dict[str, Any]] = []
            for name, pem in (("none", None), ("ca", pki["ca"]), ("wrong", pki["other_ca"])):
                http = {"url": f"{lookup_base}/lookup"}
                a2a: dict[str, Any] = {
                    "cardUrl": f"{b_base}/.well-known/agent-card.json",
                    "headersSecretRef": {"name": "b-token", "key": "headers"},
                }
                (headers_dir / f"a2a_{name}").write_text(json.dumps({"Authorization": f"Bearer {TOKEN}"}))
                if pem is not None:
                    http["caSecretRef"] = place_ca(ca_dir, f"http_{name}", pem)
                    a2a["caSecretRef"] = place_ca(ca_dir, f"a2a_{name}", pem)
                tools += [
                    {"name": f"http_{name}", "type": "HTTP", "timeoutSeconds": 30, "http": http},
                    {"name": f"a2a_{name}", "type": "A2A", "timeoutSeconds": 60, "a2a": a2a},
                ]
            async with (
                environment(
                    redis_server.url, fleet_a, tools=tools, toolCaDir=str(ca_dir), toolHeadersDir=str(headers_dir)
                ) as a,
                running_worker(a.config),
            ):
                ids = {}
                for name in ("none", "ca", "wrong"):
                    ids[f"http_{name}"] = await a.submit(goal(f"http_{name}", {"q": "ticket_42"}))
                    ids[f"a2a_{name}"] = await a.submit(goal(f"a2a_{name}", {"message": "what_colour_#answer=blue"}))
                ended = await a.wait(list(ids.values()), timeout=90)
                obs = {}
                for tool, tid in ids.items():
                    # A failed handshake is the tool's observation; the task itself goes on and ends.
                    assert ended[tid]["status"] == "done", (tool, ended[tid])
                    [o] = (await a.store.steps(tid))[0].observations
                    obs[tool] = o
                # (b) With the CA that signed the certificates, both tools get their answers.
                assert obs["http_ca"].ok and "ticket 42 is open" in obs["http_ca"].output, obs["http_ca"]
                assert obs["a2a_ca"].ok and "> blue" in obs["a2a_ca"].output, obs["a2a_ca"]
                assert obs["a2a_ca"].output.startswith("A2A source: a2a:a2a_ca/"), obs["a2a_ca"].output
                # (a) The system's trust store alone, and (c) a CA that did not sign them: verification
                # fails, and the observation names the field that fixes it.
                for tool in ("http_none", "http_wrong", "a2a_none", "a2a_wrong"):
                    o = obs[tool]
                    kind = tool.split("_")[0]
                    assert not o.ok, (tool, o.output)
                    assert "CERTIFICATE_VERIFY_FAILED" in o.output, (tool, o.output)
                    assert f"spec.tools[].{kind}.caSecretRef" in o.output, (tool, o.output)

    arun(body(), timeout=150)


def test_a_trusted_ca_does_not_open_an_address_the_egress_guard_denies(tmp_path, pki):
    async def body() -> None:
        ctx = tool_ctx()
        trust = tool_trust(str(pki["ca"]), "spec.tools[].http.caSecretRef (t)")
        denied = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))
        hits: list[str] = []
        async with https_site(lookup_app(hits), pki) as base:
            allowed = HTTPTool("t", f"{base}/lookup", trust=trust, denied=())
            guarded = HTTPTool("t", f"{base.replace('127.0.0.1', 'localhost')}/lookup", trust=trust, denied=denied)
            try:
                assert "ticket 42 is open" in await allowed.run({"q": "x"}, ctx)
                assert len(hits) == 1
                # A name resolving to a denied address: refused at connect time (the guarded resolver
                # of the same connector that carries the CA), so the server is never reached.
                with pytest.raises(ToolError, match="unreachable"):
                    await guarded.run({"q": "x"}, ctx)
                assert len(hits) == 1, hits
            finally:
                await allowed.close()
                await guarded.close()

    arun(body(), timeout=30)


def test_a_renewed_ca_file_is_trusted_by_the_same_tool_without_a_restart(tmp_path, pki):
    # The CA Secret is renewed while the worker runs: the kubelet swaps the file, and the tool (its
    # connection pool and the context it holds, made before the change) trusts the new CA from the
    # next check on. Here the check is every call (recheck_seconds=0; a minute in the workers).
    async def body() -> None:
        ctx = tool_ctx()
        mounted = tmp_path / "renewed.pem"
        mounted.write_bytes(pki["other_ca"].read_bytes())  # the CA before the renewal: not the signer
        trust = tool_trust(str(mounted), "spec.tools[].http.caSecretRef (t)", recheck_seconds=0)
        async with https_site(lookup_app(), pki) as base:
            tool = HTTPTool("t", f"{base}/lookup", trust=trust, denied=())
            try:
                with pytest.raises(ToolError, match="CERTIFICATE_VERIFY_FAILED"):
                    await tool.run({"q": "x"}, ctx)
                mounted.write_bytes(pki["ca"].read_bytes())  # the renewed Secret's ca.crt
                assert "ticket 42 is open" in await tool.run({"q": "x"}, ctx)
            finally:
                await tool.close()

    arun(body(), timeout=30)


def start_tls_mcp_server(port: int, pki: dict[str, Path], tmp: Path) -> Proc:
    """The SDK-built streamable-HTTP MCP server of the MCP tests (mcp_http_server.py), served by
    uvicorn over HTTPS with the test CA's certificate."""
    code = (
        "import sys, uvicorn; sys.path.insert(0, sys.argv[1]); from mcp_http_server import server; "
        "uvicorn.run(server.streamable_http_app(), host='127.0.0.1', port=int(sys.argv[2]), "
        "ssl_certfile=sys.argv[3], ssl_keyfile=sys.argv[4], log_level='warning')"
    )
    args = [str(HERE), str(port), str(pki["cert"]), str(pki["key"])]
    proc = Proc([sys.executable, "-c", code, *args], log=tmp / f"mcp-tls-{port}.log")
    deadline = time.monotonic() + 30
    while not port_open(port):
        assert proc.alive() and time.monotonic() < deadline, proc.logs()
        time.sleep(0.1)
    return proc


def test_an_mcp_url_server_over_https_is_reached_only_through_the_ca_that_signed_it(tmp_path, pki):
    port = free_port()
    proc = start_tls_mcp_server(port, pki, tmp_path)
    url = f"https://127.0.0.1:{port}/mcp"
    field = "spec.tools[].mcp.caSecretRef (calc)"

    async def body() -> None:
        trusted = MCPServer(
            "calc", url=url, read_only=["add"], connect_timeout=5.0, trust=tool_trust(str(pki["ca"]), field)
        )
        untrusted = MCPServer("plain", url=url, connect_timeout=2.0)
        wrong = MCPServer("other", url=url, connect_timeout=2.0, trust=tool_trust(str(pki["other_ca"]), field))
        box, _ = await started(trusted)
        try:
            [added] = await step(box, task("t-tls"), 0, call("calc_add", a=2, b=40))
            assert added.ok and added.output == "42", added
        finally:
            await box.close()
        for server in (untrusted, wrong):
            box, _ = await started(server, listed=False)
            try:
                await until(lambda s=server: "CERTIFICATE_VERIFY_FAILED" in s.last_error, 20)
                assert box.names == [] and server.listings == 0
                assert "spec.tools[].mcp.caSecretRef" in server.last_error, server.last_error
            finally:
                await box.close()
        # A file that is no certificate: the server is never connected, and why names the field.
        bad = tmp_path / "bad.pem"
        bad.write_text("not a certificate")
        broken = MCPServer("broken", url=url, connect_timeout=2.0, trust=tool_trust(str(bad), field, recheck_seconds=0))
        t0 = time.monotonic()
        box, _ = await started(broken, listed=False)
        try:
            assert time.monotonic() - t0 < 1, "an unusable CA must not delay the worker's start"
            assert broken.connects == 0 and broken.last_error.startswith(field), broken.last_error
            # The Secret fixed while the worker runs: the next try reads the file again and connects.
            bad.write_bytes(pki["ca"].read_bytes())
            await until(lambda: broken.connects == 1 and broken.listings >= 1, 30)
        finally:
            await box.close()

    try:
        arun(body(), 90)
    finally:
        proc.end()
