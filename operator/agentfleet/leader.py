"""Leader election on a coordination.k8s.io/v1 Lease: of several operator replicas, one reconciles.

kopf's peering pauses lower-priority operators; it does not elect, so two replicas would both
reconcile and write. Here a replica runs kopf only once it holds the Lease (manager.py): a follower
starts no handler, no watch and no work queue, so it cannot write. Same rules as client-go's
leaderelection package:

- the holder renews every ``retry`` seconds; a renewal that has not succeeded for ``renew_deadline``
  seconds means leadership is lost, and the process exits at once (``on_lost``): a replica that cannot
  renew (partitioned, API server unreachable) stops writing before anyone else may take over;
- a follower takes the Lease over only when the record it sees has not changed for ``duration``
  seconds of its own clock. It never compares the holder's renewTime with its own clock, so clock
  skew between nodes cannot shorten the wait; renew_deadline < duration leaves the old holder time to
  stop first;
- writes are optimistic: every update carries the resourceVersion it read, so of two replicas that
  try at once, one gets a Conflict and goes back to following;
- a holder that stops cleanly (SIGTERM) releases the Lease (holder cleared) so the next one takes
  over without waiting out ``duration``.

``decide`` is the pure part (unit-tested with a fake clock); ``Elector`` does the I/O.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from kubernetes.dynamic.exceptions import ConflictError

from agentfleet.kube import Kube

log = logging.getLogger("agentfleet.leader")

API_VERSION = "coordination.k8s.io/v1"
KIND = "Lease"


@dataclass(frozen=True)
class Timing:
    """Seconds. duration > renew_deadline > retry, as in client-go (15/10/2 there too)."""

    duration: float = 15.0
    renew_deadline: float = 10.0
    retry: float = 2.0

    def __post_init__(self) -> None:
        if not (self.duration > self.renew_deadline > self.retry > 0):
            raise ValueError(f"need duration > renew_deadline > retry > 0, got {self}")


@dataclass(frozen=True)
class Record:
    """What a Lease's spec says."""

    holder: str = ""
    duration_s: int = 15
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0


@dataclass(frozen=True)
class Seen:
    """The record as this replica last saw it, and when (its own monotonic clock) it last changed."""

    record: Record
    changed_at: float


Action = Literal["create", "renew", "acquire", "wait"]


@dataclass(frozen=True)
class Decision:
    action: Action
    record: Record | None  # what to write (None for wait)
    wait_s: float  # for wait: how long until the current holder's lease could expire


def decide(seen: Seen | None, exists: bool, me: str, now: float, wall: str, timing: Timing) -> Decision:
    """What this replica does with the Lease now. ``now``: monotonic seconds; ``wall``: the
    MicroTime written into acquire/renew times (for people; never compared across replicas)."""
    duration = int(timing.duration)
    if not exists or seen is None:
        return Decision("create", Record(me, duration, wall, wall, 0), 0.0)
    cur = seen.record
    if cur.holder == me:
        return Decision("renew", replace(cur, duration_s=duration, renew_time=wall), 0.0)
    expires = seen.changed_at + max(cur.duration_s, 1)
    if cur.holder and now < expires:
        return Decision("wait", None, expires - now)
    # Free (released) or expired: take it over.
    return Decision("acquire", Record(me, duration, wall, wall, cur.transitions + 1), 0.0)


def microtime(t: datetime | None = None) -> str:
    return (t or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def record_of(lease: dict[str, Any]) -> Record:
    spec = lease.get("spec") or {}
    return Record(
        holder=spec.get("holderIdentity") or "",
        duration_s=int(spec.get("leaseDurationSeconds") or 15),
        acquire_time=spec.get("acquireTime"),
        renew_time=spec.get("renewTime"),
        transitions=int(spec.get("leaseTransitions") or 0),
    )


def spec_of(r: Record) -> dict[str, Any]:
    return {
        "holderIdentity": r.holder,
        "leaseDurationSeconds": r.duration_s,
        "acquireTime": r.acquire_time,
        "renewTime": r.renew_time,
        "leaseTransitions": r.transitions,
    }


class Elector:
    """One replica's view of one Lease. ``try_once`` is one observe-decide-apply pass."""

    def __init__(
        self,
        kube: Kube,
        *,
        namespace: str,
        name: str,
        identity: str,
        timing: Timing | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.namespace, self.name, self.identity = namespace, name, identity
        self.timing = timing or Timing()
        self.clock = clock
        self.seen: Seen | None = None
        self.leading = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- one pass ---

    def _observe(self) -> dict[str, Any] | None:
        lease = self.kube.get(API_VERSION, KIND, self.name, self.namespace)
        if lease is not None:
            rec = record_of(lease)
            if self.seen is None or self.seen.record != rec:
                self.seen = Seen(rec, self.clock())
        return lease

    def try_once(self) -> bool:
        """Observe, decide, apply. True when this replica holds the Lease afterwards."""
        lease = self._observe()
        d = decide(self.seen, lease is not None, self.identity, self.clock(), microtime(), self.timing)
        if d.action == "wait" or d.record is None:
            self.leading = False
            return False
        body = {"apiVersion": API_VERSION, "kind": KIND, "spec": spec_of(d.record)}
        try:
            if d.action == "create":
                body["metadata"] = {"name": self.name, "namespace": self.namespace}
                self.kube.create(body)
            else:
                # The resourceVersion read above is the precondition: a Conflict means another
                # replica wrote in between, and it wins.
                body["metadata"] = {"resourceVersion": lease["metadata"]["resourceVersion"]}  # type: ignore[index]
                self.kube.merge_patch(API_VERSION, KIND, self.name, self.namespace, body, limited=False)
        except ConflictError:
            self.leading = False
            return False
        if d.action != "renew":
            log.info(
                "leader election: %s now holds Lease %s/%s (%s)", self.identity, self.namespace, self.name, d.action
            )
        self.seen = Seen(d.record, self.clock())
        self.leading = True
        return True

    # --- loops ---

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Block until this replica leads (True) or ``stop`` is set (False)."""
        stop = stop or self._stop
        announced = False
        while not stop.is_set():
            try:
                if self.try_once():
                    return True
            except Exception as e:  # noqa: BLE001 - an unreachable API server: keep trying
                log.warning(
                    "leader election: cannot read or write Lease %s/%s: %s", self.namespace, self.name, type(e).__name__
                )
            if not announced and self.seen is not None:
                log.info(
                    "leader election: following %s (Lease %s/%s)", self.seen.record.holder, self.namespace, self.name
                )
                announced = True
            stop.wait(self.timing.retry)
        return False

    def keep(self, on_lost: Callable[[str], None]) -> None:
        """Renew in a daemon thread; ``on_lost`` is called (once) when renewal has failed for
        ``renew_deadline`` seconds or another replica holds the Lease."""

        def run() -> None:
            last_ok = self.clock()
            while not self._stop.wait(self.timing.retry):
                try:
                    ok = self.try_once()
                except Exception as e:  # noqa: BLE001
                    log.warning("leader election: renewal failed: %s", type(e).__name__)
                    ok = False
                if ok:
                    last_ok = self.clock()
                    continue
                if self._stop.is_set():
                    return
                holder = self.seen.record.holder if self.seen else ""
                taken = holder not in ("", self.identity)
                if not taken and self.clock() - last_ok < self.timing.renew_deadline:
                    continue  # a failed or conflicting write: retry until the deadline
                on_lost(f"Lease {self.namespace}/{self.name} lost (holder now {holder or 'nobody'})")
                return

        self._thread = threading.Thread(target=run, name="af-leader-renew", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop renewing and clear the holder, so a follower takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timing.retry + 5)
        if not self.leading:
            return
        try:
            lease = self._observe()
            if lease is None or record_of(lease).holder != self.identity:
                return
            body = {
                "metadata": {"resourceVersion": lease["metadata"]["resourceVersion"]},
                "spec": {"holderIdentity": "", "renewTime": microtime()},
            }
            self.kube.merge_patch(API_VERSION, KIND, self.name, self.namespace, body, limited=False)
            log.info("leader election: %s released Lease %s/%s", self.identity, self.namespace, self.name)
        except Exception as e:  # noqa: BLE001 - the Lease then expires on its own
            log.warning("leader election: release failed: %s", type(e).__name__)
        self.leading = False
