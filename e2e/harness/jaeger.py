"""Jaeger v2's all-in-one as a trace collector for tests: OTLP/HTTP in, spans kept in memory, read
back through its query API.

The binary comes from ``e2e/cluster/thirdparty.sh jaeger`` (Jaeger's own Go module at the version pinned
by e2e/cluster/jaeger/go.mod; ``cmd/jaeger`` is the v2 binary, an OpenTelemetry Collector build). Every
listener is on a free 127.0.0.1 port, the collector's own metrics are off (their default port
8888 would collide between runs), and the batch processor flushes every 100 ms so a test reads
its spans back within a second of their export.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from e2e.harness.neighbours import thirdparty
from e2e.harness.poll import poll
from e2e.harness.ports import free_ports, wait_http
from e2e.harness.procs import Proc

CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{otlp}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"""


def jaeger_binary(timeout: float = 3600) -> Path:
    """The cached ``jaeger`` binary (built first when missing: cold, see e2e/cluster/thirdparty.sh)."""
    return thirdparty("jaeger", timeout) / "jaeger"


class Jaeger:
    def __init__(self, proc: Proc, otlp: int, query: int) -> None:
        self.proc = proc
        self.otlp_endpoint = f"http://127.0.0.1:{otlp}"  # spec.tracing.endpoint: spans go to /v1/traces under it
        self.query_url = f"http://127.0.0.1:{query}"

    def _get(self, path: str) -> Any:
        with urllib.request.urlopen(self.query_url + path, timeout=10) as resp:  # noqa: S310 - 127.0.0.1 only
            return json.loads(resp.read())

    def traces(self, service: str, limit: int = 200) -> list[dict[str, Any]]:
        """Traces holding spans of ``service`` (the fleet's name), in the query API's JSON form."""
        try:
            return self._get(f"/api/traces?service={service}&limit={limit}&lookback=1h").get("data") or []
        except urllib.error.HTTPError as e:
            if e.code == 404:  # the service has sent nothing yet
                return []
            raise

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        """All spans of one trace (any service's)."""
        data = self._get(f"/api/traces/{trace_id}").get("data") or []
        return [s for t in data for s in t["spans"]]

    def wait_spans(self, service: str, ready: Any, timeout: float = 30) -> list[dict[str, Any]]:
        """All spans of ``service`` once ``ready(spans)`` holds; fails with what arrived after ``timeout``."""
        spans: list[dict[str, Any]] = []

        def arrived() -> list[dict[str, Any]] | None:
            spans[:] = [s for t in self.traces(service) for s in t["spans"]]
            return list(spans) if ready(spans) else None

        def got() -> str:
            return f"got {len(spans)}: {sorted(s['operationName'] for s in spans)[:40]}"

        def fail(message: str) -> None:
            raise AssertionError(message)

        return poll(arrived, timeout, f"spans of {service}", 0.3, fail, last=got)


def tags(span: dict[str, Any]) -> dict[str, Any]:
    """A span's attributes as a dict (the query API lists them as key/value pairs)."""
    return {t["key"]: t["value"] for t in span.get("tags", [])}


@contextmanager
def jaeger(directory: Path, start_seconds: float = 60) -> Iterator[Jaeger]:
    """A Jaeger all-in-one with in-memory storage on free ports; killed at exit."""
    directory.mkdir(parents=True, exist_ok=True)
    otlp, query, query_grpc = free_ports(3)
    config = directory / "jaeger.yaml"
    config.write_text(CONFIG.format(otlp=otlp, query=query, query_grpc=query_grpc))
    proc = Proc([str(jaeger_binary()), "--config", str(config)], log=directory / "jaeger.log")
    try:
        wait_http(f"http://127.0.0.1:{query}/api/services", start_seconds, server=proc)
        yield Jaeger(proc, otlp, query)
    finally:
        proc.end()


@pytest.fixture(scope="module")
def collector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    """A Jaeger for one test module (import it into the module: ``from e2e.harness.jaeger import collector``)."""
    with jaeger(tmp_path_factory.mktemp("jaeger")) as j:
        yield j
