"""A private Prometheus on 127.0.0.1: Debian's ``prometheus`` package (installed when missing),
a temporary config that scrapes the given targets every second, stopped and removed by ``stop``."""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.harness.installers import ensure_prometheus
from e2e.harness.poll import poll
from e2e.harness.ports import free_port, http_ok
from e2e.harness.procs import Proc


class PrometheusServer:
    """A private Prometheus on 127.0.0.1 scraping ``targets`` (host:port) every second."""

    def __init__(
        self, targets: list[str], scrape_interval: str = "1s", job: str = "sim", file_sd: Path | None = None
    ) -> None:
        """``file_sd``: also discover targets (with their labels) from this JSON file, re-read on
        change - how a test stands in for Kubernetes service discovery of pods that come and go."""
        self.targets = targets
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir = Path(tempfile.mkdtemp(prefix="agentfleet-prom-"))
        scrape: dict[str, Any] = {"job_name": job, "scrape_interval": scrape_interval}
        if targets or file_sd is None:
            scrape["static_configs"] = [{"targets": targets}]
        if file_sd is not None:
            scrape["file_sd_configs"] = [{"files": [str(file_sd)], "refresh_interval": "1s"}]
        config = {
            "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
            "scrape_configs": [scrape],
        }
        # JSON is valid YAML: no YAML dependency needed here.
        (self._dir / "prometheus.yml").write_text(json.dumps(config))
        self._proc = Proc(
            [
                ensure_prometheus(),
                f"--config.file={self._dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self._dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            log=self._dir / "prometheus.log",
            python_path=False,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        self._proc.wait_ready(lambda: http_ok(self.url + "/-/ready"), timeout, "prometheus /-/ready", interval=0.3)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """Instant query; returns the result vector (``[{"metric": {...}, "value": [ts, "v"]}]``)."""
        url = self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        if body.get("status") != "success":
            raise RuntimeError(f"query failed: {body}")
        return list(body["data"]["result"])

    def wait_for(
        self, promql: str, predicate: Callable[[list[dict[str, Any]]], bool], timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        seen: list[list[dict[str, Any]]] = [[]]

        def holds() -> tuple[list[dict[str, Any]]] | None:
            seen[0] = self.query(promql)
            return (seen[0],) if predicate(seen[0]) else None  # a 1-tuple: an empty result may be the answer

        return poll(holds, timeout, f"{promql!r} to satisfy the check", last=lambda: f"last result {seen[0]}")[0]

    def target_health(self) -> str:
        """The active targets as Prometheus sees them (health, last error, last scrape's duration):
        what a test prints when a replica "reported no fresh metrics"."""
        try:
            with urllib.request.urlopen(self.url + "/api/v1/targets?state=active", timeout=5) as resp:
                active = json.load(resp)["data"]["activeTargets"]
        except (OSError, KeyError, ValueError) as e:
            return f"prometheus {self.url}: targets unreadable ({e!r})"
        rows = [
            f"{t['labels'].get('pod', t['scrapeUrl'])} {t['scrapeUrl']} {t['health']}"
            f" last {t.get('lastScrape', '?')} took {t.get('lastScrapeDuration', '?')}s {t.get('lastError') or ''}"
            for t in active
        ]
        return f"prometheus {self.url} targets ({len(rows)}):\n" + "\n".join(rows)

    def log_tail(self, n: int = 4000) -> str:
        return (self._dir / "prometheus.log").read_bytes()[-n:].decode(errors="replace")

    def stop(self) -> None:
        self._proc.end(kill=False, timeout=10)
        shutil.rmtree(self._dir, ignore_errors=True)


@pytest.fixture
def prometheus_server() -> Iterator[Callable[[list[str]], PrometheusServer]]:
    """Factory: ``prom = prometheus_server(["127.0.0.1:18000", ...])``; stopped at teardown."""
    started: list[PrometheusServer] = []

    def start(targets: list[str], scrape_interval: str = "1s") -> PrometheusServer:
        server = PrometheusServer(targets, scrape_interval)
        started.append(server)
        server.wait_ready()
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
