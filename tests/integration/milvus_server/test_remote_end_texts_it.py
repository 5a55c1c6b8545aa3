"""Issue 57 finding 6: what a VectorIndex's status and Events say when spec.milvus.uri is not Milvus.

A gRPC server that is not Milvus answered UNIMPLEMENTED, and that text reached status while a closed
port showed the fixed text: an author could map the services behind the operator. Now a closed
port, a gRPC server of another kind and a plain HTTP server all read the same fixed text; the cause
is only in the operator's log."""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

from e2e.harness.ports import free_port
from tests.integration.milvus_server.conftest import ApiStandIn, run_pass, vectorindex

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def grpc_port() -> Iterator[int]:
    """A real gRPC server with one service that is not Milvus' (every Milvus method: UNIMPLEMENTED)."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    handler = grpc.method_handlers_generic_handler(
        "other.Service", {"Ping": grpc.unary_unary_rpc_method_handler(lambda req, ctx: req)}
    )
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield port
    server.stop(0)


@pytest.fixture(scope="module")
def http_port() -> Iterator[int]:
    class Admin(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"internal admin page")

        do_POST = do_GET  # noqa: N815

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Admin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()


def said(port: int, caplog: pytest.LogCaptureFixture) -> tuple[str, str, list[tuple[str, str, str]], str]:
    api = ApiStandIn()
    with caplog.at_level(logging.INFO, logger="agentfleet.vectorindex"):
        caplog.clear()
        err = run_pass(api, vectorindex(f"http://127.0.0.1:{port}", "probe"))
    assert err is not None
    ready, degraded = api.condition("Ready"), api.condition("Degraded")
    return ready["message"].replace(str(port), "PORT"), degraded["message"], api.events, caplog.text


def test_not_milvus_and_a_closed_port_read_the_same_fixed_text(
    grpc_port: int, http_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    closed = said(free_port(), caplog)
    other_grpc = said(grpc_port, caplog)
    plain_http = said(http_port, caplog)
    assert closed[:3] == other_grpc[:3] == plain_http[:3]
    for ready, degraded, events, _ in (closed, other_grpc, plain_http):
        for text in (ready, degraded, *(m for _, _, m in events)):
            assert "UNIMPLEMENTED" not in text and "admin" not in text and "refused the call" not in text
        assert "no Milvus answered" in degraded
    assert "UNIMPLEMENTED" in other_grpc[3]  # the cause is in the operator's log
