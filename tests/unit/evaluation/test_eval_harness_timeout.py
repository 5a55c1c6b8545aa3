"""A task the eval harness gives up on counts what it spent (runner.run_task): its tokens, cost and
steps as the task API reports them after the cancel, not zeros that flatter the pass. The task
API here is a stand-in HTTP server in this process that never ends the task."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from agentfleet_eval.taskset import EvalTask

from agentfleet_client.evaluation import runner


class NeverEnds(BaseHTTPRequestHandler):
    """POST /v1/tasks makes task t1, which runs until cancelled and has used 2,345 tokens."""

    cancelled = False

    def _send(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.endswith("/cancel"):
            type(self).cancelled = True
        self._send({"id": "t1", "status": "running"})

    def do_GET(self) -> None:  # noqa: N802
        view = {"id": "t1", "status": "running", "stepCount": 3, "children": []}
        view["treeUsage"] = {"totalTokens": 2345, "cost": "0.0002"}
        view["retrieved"] = [{"source": "a.html", "rank": 1, "text": "x"}]
        view["answer"] = "a partial thought"
        self._send(view)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), NeverEnds)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_a_timed_out_task_counts_the_tokens_it_spent(api: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "POLL_SECONDS", 0.05)
    task = EvalTask(id="q1", question="What is the default?", kind="default", facts=(), part="heldout")
    out = runner.run_task(runner.Target("fleet", api, "token"), task, "run", timeout=0.2)
    assert NeverEnds.cancelled
    assert (out.status, out.reason, out.answer, out.latency_seconds) == ("timeout", "harness_timeout", "", 0.2)
    assert (out.tokens, out.cost, out.steps) == (2345, Decimal("0.0002"), 3)
    assert [p["source"] for p in out.retrieved] == ["a.html"]
