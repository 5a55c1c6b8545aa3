"""No HTTP call of the operator follows a redirect, and what a remote end answers never reaches
Events or status (issue 57, finding 5).

Real HTTP servers on loopback: a "replica" (or "Prometheus") that answers 302 to a second server
holding an internal admin page with a token on it. On the code before the fix the adapter sync
followed the 302 with the replicas' API key and copied the page into its Warning Event, and the
autoscaler's Prometheus client followed it too and put the page into its condition.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from agentfleet.autoscale.goodput import Objective
from agentfleet.controllers.modelreplicaset.adapters import AdapterClient, sync_replica
from agentfleet.controllers.modelreplicaset.inflight import read_in_flight
from agentfleet.promql import PromReader, Target

pytestmark = pytest.mark.integration

SECRET_PAGE = b'{"data": [], "admin_token": "tok-INTERNAL-9f3a", "note": "internal admin console"}'
ERROR_PAGE = b"internal stack trace: db password=hunter2 at 10.0.0.7"
API_KEY = "sk-replica-key-4711"


@dataclass
class Server:
    port: int
    seen: list[tuple[str, str, str | None]] = field(default_factory=list)  # (method, path, Authorization)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def serve(answer) -> Iterator[Server]:  # type: ignore[no-untyped-def]
    box: dict[str, Server] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def _any(self) -> None:
            box["s"].seen.append((self.command, self.path, self.headers.get("Authorization")))
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            code, headers, body = answer(self.path)
            self.send_response(code)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _any  # noqa: N815 - http.server's names

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    box["s"] = Server(srv.server_address[1])
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield box["s"]
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture
def admin() -> Iterator[Server]:
    """The internal page the redirect points at."""
    yield from serve(lambda path: (200, {"Content-Type": "application/json"}, SECRET_PAGE))


@pytest.fixture
def redirector(admin: Server) -> Iterator[Server]:
    """A replica (or Prometheus) that answers every call with a 302 to the admin page."""
    yield from serve(lambda path: (302, {"Location": f"{admin.url}/admin{path}"}, b""))


@pytest.fixture
def failing() -> Iterator[Server]:
    """An endpoint that answers 500 with an error page of its own."""
    yield from serve(lambda path: (500, {"Content-Type": "text/plain"}, ERROR_PAGE))


def leaks(text: str | None) -> bool:
    t = text or ""
    return any(s in t for s in ("tok-INTERNAL", "admin console", "hunter2", "10.0.0.7", "/admin"))


def test_adapter_sync_does_not_follow_a_replicas_redirect_with_the_api_key(redirector: Server, admin: Server) -> None:
    client = AdapterClient(f"127.0.0.1:{redirector.port}", api_key=API_KEY, timeout=5.0)
    held, error = sync_replica(client, {"sql": "/models-cache/adapters/sql"})
    # The replica was asked (with its key), the redirect's target never.
    assert redirector.seen and redirector.seen[0][2] == f"Bearer {API_KEY}"
    assert admin.seen == [], f"the redirect was followed: {admin.seen}"
    # The Warning Event carries this text: fixed, nothing of the target's page.
    assert held == [] and error is not None
    assert not leaks(error) and "redirect" in error and "not followed" in error, error


def test_a_replicas_error_body_stays_out_of_the_event_text(failing: Server) -> None:
    held, error = sync_replica(AdapterClient(f"127.0.0.1:{failing.port}", api_key=API_KEY), {"a": "/a"})
    assert held == [] and error is not None and failing.seen
    assert not leaks(error) and "HTTP 5xx" in error, error


def test_reading_a_replicas_metrics_does_not_follow_a_redirect(redirector: Server, admin: Server) -> None:
    assert read_in_flight("127.0.0.1", redirector.port, timeout=5.0) is None
    assert redirector.seen and admin.seen == []


def test_the_autoscalers_prometheus_reads_follow_no_redirect_and_report_a_fixed_text(
    redirector: Server, admin: Server, failing: Server
) -> None:
    target = Target('namespace="team-a",model_name="m"')
    objectives = [Objective("ttft", "vllm:time_to_first_token_seconds", 0.5)]
    obs = PromReader(redirector.url, timeout_s=5.0).observe(target, objectives, 60)
    signals = PromReader(redirector.url, timeout_s=5.0).worker_signals('agentfleet_fleet="f"')
    assert redirector.seen and admin.seen == [], f"the redirect was followed: {admin.seen}"
    # Observation.error and WorkerSignals.error become the MetricsAvailable condition's message.
    assert obs.error is not None and not leaks(obs.error), obs.error
    assert signals.error is not None and not leaks(signals.error), signals.error
    failed = PromReader(failing.url, timeout_s=5.0).observe(target, objectives, 60)
    assert failed.error is not None and not leaks(failed.error), failed.error


def test_a_prometheus_url_that_is_not_prometheus_is_a_fixed_text_not_a_crash(admin: Server) -> None:
    """The admin page answers 200 with JSON that is not Prometheus's: before, a TypeError escaped
    the evaluation; now it is "unavailable" with a fixed text."""
    target = Target('namespace="team-a",model_name="m"')
    obs = PromReader(admin.url, timeout_s=5.0).observe(target, [Objective("ttft", "vllm:ttft", 0.5)], 60)
    signals = PromReader(admin.url, timeout_s=5.0).worker_signals('agentfleet_fleet="f"')
    assert obs.error is not None and not leaks(obs.error), obs.error
    assert signals.error is not None and not leaks(signals.error), signals.error
