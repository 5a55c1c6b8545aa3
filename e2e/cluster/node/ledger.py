"""A tool endpoint with a side effect that it records: the real-node fault test's witness that no
step's tool call runs twice (e2e/tests/test_realnode.py runs it as a pod behind a Service).

POST (any path) applies one "effect" per Idempotency-Key, the header an AgentFleet's HTTP tool
with ``sideEffects: true`` sends (``<task>:<step>:<call>``): a repeated key is counted, and answered
with the first answer, as an idempotent API answers it. The call is recorded when it arrives, before
the answer, so a caller killed mid-call has still caused its effect. GET /calls: ``{key: calls}``.

LEDGER_DELAY_S: seconds every POST takes (a tool that works a while, so a kill can meet a step in
its tool as well as in its model call).
"""

from __future__ import annotations

import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DELAY_S = float(os.environ.get("LEDGER_DELAY_S", "0"))
PORT = int(os.environ.get("LEDGER_PORT", "8080"))
lock = threading.Lock()
calls: dict[str, int] = {}
answers: dict[str, bytes] = {}


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        key = self.headers.get("Idempotency-Key", "")
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if not key:
            self._send(400, {"error": "no Idempotency-Key header: give the tool sideEffects: true"})
            return
        with lock:
            calls[key] = calls.get(key, 0) + 1
            answer = answers.setdefault(key, json.dumps({"recorded": key, "effect": len(answers) + 1}).encode())
        time.sleep(DELAY_S)
        self._send(200, answer)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        if self.path == "/calls":
            with lock:
                self._send(200, dict(calls))
        elif self.path == "/healthz":
            self._send(200, {"ok": True})
        else:
            self._send(404, {"error": f"no {self.path}: GET /calls or /healthz"})

    def _send(self, status: int, body: object) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's signature
        pass  # one line per call would be all the pod's log says


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
