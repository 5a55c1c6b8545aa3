"""How many requests each replica holds, read from its vLLM /metrics when a drain or a scale-down
must choose: in parallel, with a short timeout, and never asking an unreachable endpoint again
for a few seconds (it would hold every reconcile for the whole timeout)."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Callable

from agentfleet.controllers.modelreplicaset.replica_http import OPENER
from agentfleet.replica_rollout import parse_in_flight

# Reading a replica's /metrics must not hold up a reconcile: vLLM answers in milliseconds.
METRICS_TIMEOUT_SECONDS = 1.0
METRICS_RETRY_SECONDS = 5.0

Target = tuple[str, int]  # (pod IP, port)


def read_in_flight(ip: str, port: int, timeout: float = METRICS_TIMEOUT_SECONDS) -> int | None:
    """Requests a replica holds, from its vLLM /metrics; None when it cannot be read (a redirect is
    not followed: replica_http)."""
    try:
        with OPENER.open(f"http://{ip}:{port}/metrics", timeout=timeout) as resp:
            return parse_in_flight(resp.read(4 << 20).decode("utf-8", "replace"))
    except (OSError, ValueError):
        return None


class InFlightReader:
    def __init__(
        self, read: Callable[[str, int], int | None] = read_in_flight, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.read = read
        self.clock = clock
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=8, thread_name_prefix="af-metrics")
        self._unreachable: dict[Target, float] = {}
        self._lock = threading.Lock()

    def fetch(self, targets: dict[str, Target]) -> dict[str, int | None]:
        """In-flight requests per replica; None where unknown (an unreadable replica is never an error)."""
        now = self.clock()
        out: dict[str, int | None] = {}
        futures = {}
        with self._lock:
            unreachable = dict(self._unreachable)
        for r, target in targets.items():
            if unreachable.get(target, 0.0) > now:
                out[r] = None
            else:
                futures[r] = (target, self._pool.submit(self.read, *target))
        for r, (_, f) in futures.items():
            try:
                out[r] = f.result(timeout=METRICS_TIMEOUT_SECONDS * 2)
            except Exception:  # noqa: BLE001 - an unreadable replica is "unknown", never an error
                out[r] = None
        with self._lock:
            for r, (target, _) in futures.items():
                if out[r] is None:
                    self._unreachable[target] = now + METRICS_RETRY_SECONDS
                else:
                    self._unreachable.pop(target, None)
            if len(self._unreachable) > 4096:
                self._unreachable = {t: until for t, until in self._unreachable.items() if until > now}
        return out
