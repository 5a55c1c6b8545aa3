"""Simulated vLLM replicas behind a ModelReplicaSet's pods, for the autoscaling e2e tests.

kwok runs no containers, so nothing answers for a replica pod. ``PodBackedSim`` watches the pods
of one ModelReplicaSet and serves one simulator replica (agentfleet_sim, one process, one port per
replica) for each pod that is Running; it writes a Prometheus file_sd file whose targets carry the
labels in-cluster pod scraping gives them (``namespace``, ``pod``, plus the ModelReplicaSet's
label), so the autoscaler's PromQL (``namespace="...",model_name="..."`` by ``pod``) reads them as
it would in a cluster. A replica leaves when its pod is deleted.

``PodBackedFleets`` pairs each ``PodBackedSim`` with a Prometheus that discovers its replicas.

``ClosedLoopLoad`` is the client side: N agents, each sending its next request when the last one
returned, routed like the ModelReplicaSet's router would (least outstanding requests among the
serving pods; a draining pod, ``agentfleet.io/serving=false``, gets no new requests).
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from agentfleet_sim import FleetThread, start_fleet
from e2e.demo.prom import replica_targets, write_sd
from e2e.harness.prometheus import PrometheusServer

MRS_LABEL = "agentfleet.io/modelreplicaset"
ROLE_LABEL = "agentfleet.io/role"
SERVING_LABEL = "agentfleet.io/serving"

# A replica serves 2 sequences at a time, 20 tokens at 20 ms: ~0.4 s per request, so a handful of
# agents per replica builds a real waiting queue (the autoscaling and KEDA tests scale on it).
QUEUEING_ENGINE: dict[str, Any] = {
    "max_num_seqs": 2,
    "decode_base_s": 0.02,
    "decode_per_seq_s": 0.0,
    "prefill_tokens_per_s": 200_000.0,
    "max_model_len": 8192,
    "kv_cache_tokens": 200_000,
    "output_length_mode": "max_tokens",
}


class PodBackedSim:
    def __init__(
        self,
        core: Any,
        namespace: str,
        mrs: str,
        engine: dict[str, Any],
        sd_file: Path,
        poll_s: float = 0.3,
        startup_seconds: float = 0.0,
    ) -> None:
        self.core = core
        self.namespace = namespace
        self.mrs = mrs
        self.sd_file = sd_file
        self.poll_s = poll_s
        # startup_seconds: each replica's /health fails this long after it starts (a model loading).
        engine = {"model": mrs, "served_name": mrs, **engine}
        self.fleet: FleetThread = start_fleet(0, engine=engine, startup_seconds=startup_seconds)
        self.backing: dict[str, tuple[int, str]] = {}  # pod -> (replica index, url)
        self.serving: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.last_error = ""  # the last failed poll (time and exception), for a test's failure message
        self._sd_written: dict[str, str] | None = None  # the targets in sd_file now
        self._write_sd()
        self._thread = threading.Thread(target=self._run, name="pod-backed-sim", daemon=True)
        self._thread.start()

    def _pods(self) -> list[Any]:
        return list(self.core.list_namespaced_pod(self.namespace, label_selector=f"{MRS_LABEL}={self.mrs}").items)

    def sync(self) -> None:
        live: dict[str, bool] = {}
        for pod in self._pods():
            labels = pod.metadata.labels or {}
            if labels.get(ROLE_LABEL) == "worker" or pod.metadata.deletion_timestamp is not None:
                continue
            if (pod.status.phase or "") != "Running":
                continue
            live[pod.metadata.name] = labels.get(SERVING_LABEL) != "false"
        for name in sorted(set(self.backing) - set(live)):
            index, _ = self.backing.pop(name)
            self.fleet.remove_replica(index)
        for name in sorted(set(live) - set(self.backing)):
            handle = self.fleet.add_replica()
            self.backing[name] = (handle.index, handle.url)
        with self._lock:
            self.serving = {n for n, s in live.items() if s}
        self._write_sd()

    def _write_sd(self) -> None:
        """The replicas' scrape targets, written when they changed since the last write."""
        # The labels in-cluster pod scraping gives (the demo lists its replicas the same way).
        targets = {pod: url.removeprefix("http://") for pod, (_, url) in self.backing.items()}
        if targets != self._sd_written:
            write_sd(self.sd_file, replica_targets(self.namespace, self.mrs, targets))
            self._sd_written = targets

    def endpoints(self) -> dict[str, str]:
        """Serving pods -> their replica's URL."""
        with self._lock:
            return {p: self.backing[p][1] for p in self.serving if p in self.backing}

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except Exception as e:  # noqa: BLE001 - an API hiccup: the next poll retries
                detail = getattr(e, "body", None) or ""  # an ApiException's body says which field
                self.last_error = f"{time.strftime('%H:%M:%S')} {e!r} {detail}"[:1000]
            self._stop.wait(self.poll_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self.fleet.stop()


class PodBackedFleets:
    """``sim, prom = fleets.start(name)``: simulated replicas for ModelReplicaSet ``name``'s pods and
    a Prometheus scraping them every second; ``stop()`` ends everything started, newest first."""

    def __init__(self, core: Any, namespace: str, engine: dict[str, Any]) -> None:
        self.core, self.namespace, self.engine = core, namespace, engine
        self.dir = Path(tempfile.mkdtemp(prefix="agentfleet-pod-backed-"))
        self.started: list[Any] = []

    def start(self, name: str) -> tuple[PodBackedSim, PrometheusServer]:
        sd = self.dir / f"{name}.json"
        sim = PodBackedSim(self.core, self.namespace, name, self.engine, sd)
        self.started.append(sim)
        prom = PrometheusServer([], scrape_interval="1s", file_sd=sd)
        self.started.append(prom)
        prom.wait_ready()
        return sim, prom

    def stop(self) -> None:
        for thing in reversed(self.started):
            thing.stop()


class ClosedLoopLoad:
    def __init__(self, sim: PodBackedSim, clients: int, max_tokens: int = 20, prompt_words: int = 40) -> None:
        self.sim = sim
        self.max_tokens = max_tokens
        self.prompt_words = prompt_words
        self.outstanding: dict[str, int] = {}
        self.done = 0
        self.errors = 0
        self.latencies: list[tuple[float, float]] = []  # (sent, seconds) of each answered request, monotonic clock
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)]
        for t in self._threads:
            t.start()

    def _pick(self) -> tuple[str, str] | None:
        eps = self.sim.endpoints()
        if not eps:
            return None
        with self._lock:
            pod = min(sorted(eps), key=lambda p: self.outstanding.get(p, 0))
            self.outstanding[pod] = self.outstanding.get(pod, 0) + 1
        return pod, eps[pod]

    def _client(self, i: int) -> None:
        body = json.dumps(
            {
                "model": self.sim.mrs,
                "messages": [{"role": "user", "content": f"agent {i} step " * self.prompt_words}],
                "max_tokens": self.max_tokens,
            }
        ).encode()
        while not self._stop.is_set():
            picked = self._pick()
            if picked is None:
                time.sleep(0.2)
                continue
            pod, url = picked
            req = urllib.request.Request(
                url + "/v1/chat/completions", data=body, headers={"Content-Type": "application/json"}
            )
            sent = time.monotonic()
            try:
                with urllib.request.urlopen(req, timeout=60) as resp:
                    resp.read()
                with self._lock:
                    self.done += 1
                    self.latencies.append((sent, time.monotonic() - sent))
            except OSError:
                with self._lock:
                    self.errors += 1
                time.sleep(0.2)
            finally:
                with self._lock:
                    self.outstanding[pod] -= 1

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(65)
