"""MCP tools against MCP servers nobody here wrote: the reference servers from PyPI (mcp-server-time,
mcp-server-git, mcp-server-fetch, over stdio, each started the way a worker starts one) and a
streamable-HTTP server built on the SDK's own server (mcp_http_server.py: no PyPI reference
server speaks HTTP). Each test goes through the ToolBox the worker uses, so timeouts, breakers,
recorded results of side-effect tools and the observations the model reads are the real ones.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from runtime_helpers import arun, store_for

from agentfleet_runtime.core.types import Limits, Status, TaskRecord, ToolCall
from agentfleet_runtime.tools import ToolBox
from agentfleet_runtime.tools.mcp import IDEMPOTENCY_META, MCPServer
from e2e.harness.ports import free_port, port_open
from e2e.harness.procs import Proc

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent


def task(tid: str = "t1") -> TaskRecord:
    now = time.time()
    return TaskRecord(
        id=tid, goal="g", status=Status.RUNNING, limits=Limits(), created_at=now, deadline=now + 300, root=tid
    )


def call(name: str, **arguments: Any) -> ToolCall:
    return ToolCall(f"c-{name}", name, arguments)


async def started(*servers: MCPServer, listed: bool = True, **kw: Any) -> tuple[ToolBox, list[tuple[str, str, float]]]:
    """A ToolBox over the servers, started as a worker starts it; with ``listed``, also waits for
    each server's first listing (past the 10 s start wait: this shared machine runs at load 20)."""
    seen: list[tuple[str, str, float]] = []
    box = ToolBox(list(servers), on_call=lambda n, o, s: seen.append((n, o, s)), **kw)
    await box.start()
    if listed:
        await until(lambda: all(s.listings for s in servers), 60)
    return box, seen


async def until(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def step(box: ToolBox, rec: TaskRecord, n: int, *calls: ToolCall) -> list[Any]:
    return await box.run_step(rec, n, list(calls), rec.deadline)


def test_time_server_over_stdio_lists_its_tools_and_answers():
    async def body():
        server = MCPServer(
            "clock",
            command=[sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"],
            read_only=["get_current_time"],
        )
        box, seen = await started(server)
        try:
            assert sorted(box.names) == ["clock_convert_time", "clock_get_current_time"]
            params = box.tools["clock_get_current_time"].schema()["function"]["parameters"]
            # The portable subset: objects closed (the server left additionalProperties open).
            assert params["additionalProperties"] is False and params["required"] == ["timezone"]
            assert not box.tools["clock_get_current_time"].side_effects and box.tools["clock_convert_time"].side_effects
            [ok] = await step(box, task(), 0, call("clock_get_current_time", timezone="Asia/Tokyo"))
            assert ok.ok and json.loads(ok.output)["timezone"] == "Asia/Tokyo", ok
            [bad] = await step(box, task(), 1, call("clock_get_current_time", timezone="Nowhere/Atlantis"))
            assert not bad.ok and "Invalid timezone" in bad.output, bad
            # The tool said no (its caller's mistake): the server's breaker counts no failure.
            assert box.breakers["clock_get_current_time"]._failures == 0
            assert [o for _, o, _ in seen] == ["ok", "error"]
            print(
                f"\ntime: {len(box.names)} tools discovered, {len(seen)} calls through"
                f" ({[round(s * 1000, 1) for *_, s in seen]} ms)"
            )
        finally:
            await box.close()

    arun(body(), 60)


def git(repo: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "HOME": str(repo),
    }
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


def test_git_server_on_a_repository_the_test_creates_offers_only_the_allowed_tools(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "notes.txt").write_text("the zorblat scheduler wakes every 37 seconds\n")
    git(repo, "add", "notes.txt")
    git(repo, "commit", "-q", "-m", "Document the zorblat scheduler interval")

    async def body():
        allow = ["git_status", "git_log", "git_show"]
        server = MCPServer(
            "repo",
            command=[sys.executable, "-m", "mcp_server_git", "--repository", str(repo)],
            allow=allow,
            read_only=allow,
        )
        box, seen = await started(server)
        try:
            assert sorted(box.names) == ["repo_git_log", "repo_git_show", "repo_git_status"], box.names
            assert any(s.startswith("git_commit: not in allowTools") for s in server.skipped), server.skipped
            log_obs, status_obs, commit_obs = await step(
                box,
                task(),
                0,
                call("repo_git_log", repo_path=str(repo)),
                call("repo_git_status", repo_path=str(repo)),
                call("repo_git_commit", repo_path=str(repo), message="x"),
            )
            assert log_obs.ok and "Document the zorblat scheduler interval" in log_obs.output, log_obs
            assert status_obs.ok and "main" in status_obs.output, status_obs
            # Not allowed means not there: the model reads that it does not exist.
            assert not commit_obs.ok and "unknown tool 'repo_git_commit'" in commit_obs.output
            print(
                f"\ngit: {len(server.skipped) + len(box.names)} tools listed, {len(box.names)} offered,"
                f" {len(seen)} calls through"
            )
        finally:
            await box.close()

    arun(body(), 60)


class Page(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        Page.hits.append(self.path)
        if self.path == "/robots.txt":
            self.send_response(404)
            self.end_headers()
            return
        body = (
            b"<html><head><title>Plinth</title></head><body><main><h1>Frobnicate queue</h1>"
            b"<p>The frobnicate queue retries after 5 seconds.</p></main></body></html>"
        )
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_fetch_server_reads_a_local_page_and_a_side_effect_call_is_not_repeated_on_resume(redis_server, fleet):
    from runtime_helpers import make_config

    http = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{http.server_address[1]}/frobnicate.html"
    Page.hits.clear()

    async def body():
        store = store_for(make_config(redis_server.url, fleet))
        # No readOnlyTools: fetch is taken as a side effect, so its result is recorded per call.
        server = MCPServer(
            "web", command=[sys.executable, "-m", "mcp_server_fetch", "--allow-private-ips", "--ignore-robots-txt"]
        )
        box, seen = await started(server, results=store)
        rec = task(fleet)
        try:
            assert box.names == ["web_fetch"] and box.tools["web_fetch"].side_effects
            [first] = await step(box, rec, 0, call("web_fetch", url=url))
            assert first.ok and "retries after 5 seconds" in first.output, first
            pages = [p for p in Page.hits if p != "/robots.txt"]
            # The same step again (a resumed task): the recorded observation, no second fetch.
            [again] = await step(box, rec, 0, call("web_fetch", url=url))
            assert again.output == first.output
            assert [p for p in Page.hits if p != "/robots.txt"] == pages == ["/frobnicate.html"]
            print(
                f"\nfetch: {len(box.names)} tool discovered, {len(seen)} call through,"
                f" {len(pages)} page fetch for 2 run_steps"
            )
        finally:
            await box.close()
            await store.r.aclose()

    try:
        arun(body(), 60)
    finally:
        http.shutdown()


def start_http_server(port: int, tmp: Path) -> Proc:
    proc = Proc([sys.executable, str(HERE / "mcp_http_server.py"), str(port)], log=tmp / f"mcp-{port}.log")
    deadline = time.monotonic() + 30
    while not port_open(port):
        assert proc.alive() and time.monotonic() < deadline, proc.logs()
        time.sleep(0.1)
    return proc


def test_streamable_http_server_relists_on_list_changed_and_survives_a_restart(tmp_path):
    port = free_port()
    proc = start_http_server(port, tmp_path)
    url = f"http://127.0.0.1:{port}/mcp"

    async def body():
        nonlocal proc
        server = MCPServer("calc", url=url, read_only=["add"], timeout=2.0, ping_interval=1.0, connect_timeout=5.0)
        box, seen = await started(server)
        rec = task("t-http")
        try:
            assert sorted(box.names) == ["calc_add", "calc_huge", "calc_nap", "calc_unlock", "calc_whoami"], box.names
            [added] = await step(box, rec, 0, call("calc_add", a=2, b=40))
            assert added.ok and added.output == "42"
            # A side-effect call carries the call's idempotency key in _meta.
            [who] = await step(box, rec, 1, call("calc_whoami"))
            assert json.loads(who.output)[IDEMPOTENCY_META] == "t-http:1:0", who
            # Over the tool's timeout: an observation, and the session goes on.
            [slow] = await step(box, rec, 2, call("calc_nap", seconds=10))
            assert not slow.ok and "timed out" in slow.output, slow
            # A result past maxObservationChars reaches the model cut.
            [big] = await step(box, rec, 3, call("calc_huge"))
            assert big.ok and len(big.output) < 17_000 and "more characters cut" in big.output
            # The server adds a tool and says so: the next listing has it.
            [unlocked] = await step(box, rec, 4, call("calc_unlock"))
            assert unlocked.ok
            await until(lambda: "calc_secret_word" in box.names, 10)
            [secret] = await step(box, rec, 5, call("calc_secret_word"))
            assert secret.output == "swordfish"
            connects = server.connects

            proc.end()  # the server dies: calls are observations, the worker goes on
            await until(lambda: server._session is None, 10)
            [down] = await step(box, rec, 6, call("calc_add", a=1, b=1))
            assert not down.ok and "unreachable" in down.output, down
            assert box.names, "the last listing stays offered while the server is away"

            proc = start_http_server(port, tmp_path)  # back: the session is made again
            await until(lambda: server._session is not None, 30)
            [back] = await step(box, rec, 7, call("calc_add", a=1, b=1))
            assert back.ok and back.output == "2" and server.connects > connects
            print(
                f"\nhttp: {len(box.names)} tools after restart, {len(seen)} calls through,"
                f" {server.listings} listings, {server.connects} sessions"
            )
        finally:
            await box.close()

    try:
        arun(body(), 120)
    finally:
        proc.end()


def test_a_server_that_cannot_be_reached_delays_start_only_by_its_connect_timeout():
    async def body():
        server = MCPServer("gone", url=f"http://127.0.0.1:{free_port()}/mcp", connect_timeout=1.0)
        t0 = time.monotonic()
        box, _ = await started(server, listed=False)
        waited = time.monotonic() - t0
        try:
            assert box.names == [] and waited < 3, waited
            assert "Connect" in server.last_error or "connect" in server.last_error, server.last_error
        finally:
            await box.close()

    arun(body(), 30)
