"""Per-ModelReplicaSet routing state of one pod: which replica a call goes to next.

Holds only local, reconstructible state (in-flight counts, ejection machines, latency quantiles,
the hedge budget, each task's last replica); nothing here needs to agree across pods, because the
placement itself (rendezvous order) is a pure function of the task key and the replica set.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Sequence

from agentfleet_runtime.routing.ejection import Health, OutlierDetector
from agentfleet_runtime.routing.hashing import balanced_homes, bounded_order, load_cap, rendezvous_order
from agentfleet_runtime.routing.hedging import HedgeBudget
from agentfleet_runtime.routing.overtake import OvertakeWatch
from agentfleet_runtime.routing.quantile import WindowedQuantile
from agentfleet_runtime.routing.settings import Endpoint, RoutingSettings, Tier
from agentfleet_runtime.routing.sources import ReplicaSource
from agentfleet_runtime.routing.stallwatch import StallWatch


class LastReplica:
    """Bounded LRU of task -> replica that served its previous call (for the affinity metric and
    for keeping a moved task where its cache now is). Bounded because tasks come and go forever;
    losing an old entry only costs one 'first' (or one trip back to the task's rendezvous home)."""

    def __init__(self, size: int = 65_536) -> None:
        self._d: OrderedDict[str, str] = OrderedDict()
        self._size = size

    def swap(self, task: str, replica: str) -> str | None:
        prev = self._d.pop(task, None)
        self._d[task] = replica
        if len(self._d) > self._size:
            self._d.popitem(last=False)
        return prev

    def get(self, task: str) -> str | None:
        return self._d.get(task)


class ReplicaPool:
    def __init__(self, tier: Tier, source: ReplicaSource) -> None:
        self.tier = tier
        self.source = source
        self.settings: RoutingSettings = tier.routing
        self.inflight: dict[str, int] = {}
        self.detectors: dict[str, OutlierDetector] = {}
        self.quantiles: dict[str, WindowedQuantile] = {}
        self.budget = HedgeBudget(self.settings.hedge_max_extra_percent / 100.0)
        self.stalls = StallWatch()
        self.overtakes = OvertakeWatch()
        # Task id -> replica that served its last call: where its history's KV cache is. Local
        # to this pod, which is enough: a task's calls all leave from the pod that runs it; a pod
        # that has not seen the task (a restarted one) falls back to the rendezvous home.
        self.last = LastReplica()
        self._rr = itertools.count()

    def detector(self, name: str) -> OutlierDetector:
        d = self.detectors.get(name)
        if d is None:
            d = self.detectors[name] = OutlierDetector(
                self.settings.ejection_consecutive_errors, self.settings.ejection_seconds
            )
        return d

    def order(self, key: str, now: float, exclude: Sequence[str] = (), task: str | None = None) -> list[Endpoint]:
        """Replicas for the next attempt of ``key``, best first: [target, failover/hedge, ...].

        Ejected replicas are left out unless every replica is ejected (then all are tried: a fleet
        that looks all-broken from here is more likely a local problem than a dead fleet, like
        Envoy's panic mode); with hedging on, so are stalled ones (stallwatch.py). Replicas
        already tried by this call go last, not away, so a call on a one-replica fleet can still
        retry."""
        endpoints = self.source.endpoints()
        by_name = {e.name: e for e in endpoints}
        live = [n for n in by_name if self.detector(n).admits(now) and not self.stalled(n, now)] or list(by_name)
        fresh = [n for n in live if n not in exclude] or live
        policy = self.settings.policy
        if policy == "PrefixAffinity":
            # Per task, not per key: sub-agents share their root's key (and home) but each has
            # its own history, cached where its own last call ran.
            stay = self.last.get(task or key) if self.settings.stay_after_move else None
            home = self.adapter_home(fresh)
            names = bounded_order(
                key, fresh, self.inflight, max(0.0, self.settings.eps), stay=stay, floor=self.cap_floor, home=home
            )
        elif policy == "LeastLoaded":
            # Ties break by the task's rendezvous rank: deterministic per task, spread across tasks.
            rank = {n: i for i, n in enumerate(rendezvous_order(key, fresh))}
            names = sorted(fresh, key=lambda n: (self.inflight.get(n, 0), rank[n]))
        else:
            ordered = sorted(fresh)
            k = next(self._rr) % len(ordered) if ordered else 0
            names = ordered[k:] + ordered[:k]
        rest = [n for n in rendezvous_order(key, live) if n not in names]
        return [by_name[n] for n in [*names, *rest]]

    def preferred(self, key: str, now: float, task: str | None = None) -> tuple[str | None, bool]:
        """PrefixAffinity's choice for the task before the load bound (where its cache is), and
        whether that replica is under the bound now (spillwait.py)."""
        by_name = [e.name for e in self.source.endpoints()]
        live = [n for n in by_name if self.detector(n).admits(now) and not self.stalled(n, now)] or by_name
        if self.settings.policy != "PrefixAffinity" or not live:
            return None, True
        stay = self.last.get(task or key) if self.settings.stay_after_move else None
        home = self.adapter_home(live)
        name = stay if stay in live else home if home is not None else rendezvous_order(key, live)[0]
        total = sum(self.inflight.get(n, 0) for n in live)
        return name, self.inflight.get(name, 0) < load_cap(
            total, len(live), max(0.0, self.settings.eps), self.cap_floor
        )

    def adapter_home(self, replicas: Sequence[str]) -> str | None:
        """A LoRA adapter's home among ``replicas``: balanced over the set's adapters (hashing.balanced_homes)."""
        if not self.tier.adapter:
            return None
        return balanced_homes((*self.tier.adapters, self.tier.model), sorted(replicas)).get(self.tier.model)

    @property
    def cap_floor(self) -> int:
        """Calls a replica takes before the load bound applies: 1, except for a LoRA adapter's tier,
        whose calls all share one key. There one pod's few calls would otherwise spread the adapter
        over the fleet at a concurrency of 2 (the bound sees only this pod's share), swapping it
        into every replica's GPU slots (adapter_bench.py)."""
        return self.settings.adapter_calls_per_replica if self.tier.adapter else 1

    def stalled(self, name: str, now: float) -> bool:
        """A call decodes on the replica and no token has come for the stall threshold
        (stallwatch.py); judged only with hedging on, whose signal it is."""
        return self.settings.hedging and self.stalls.stalled(name, now)

    def stall_deadline(self, name: str) -> float | None:
        """When a call waiting on ``name`` should look again for a stall (None: nothing to watch)."""
        return self.stalls.deadline(name) if self.settings.hedging else None

    def judge_silent(self, name: str, since: float, now: float) -> None:
        """Judge ``name`` stalled when not one token came from it since ``since`` (a call's send,
        a first-token percentile ago). Only with hedging on."""
        if self.settings.hedging and not self.stalls.wrote_since(name, since):
            self.stalls.judge(name, now)

    def forget_gone(self) -> None:
        """Drop state of replicas that left the set (bounded memory under churn)."""
        names = {e.name for e in self.source.endpoints()}
        for table in (self.detectors, self.inflight, self.stalls.marks):
            for name in [n for n in table if n not in names and not self.inflight.get(n)]:
                table.pop(name, None)
                self.stalls.forget(name)
                self.overtakes.forget(name)

    def quantile(self, kind: str) -> WindowedQuantile:
        q = self.quantiles.get(kind)
        if q is None:
            q = self.quantiles[kind] = WindowedQuantile(self.settings.hedge_after_percentile / 100.0)
        return q

    def ejected(self, name: str) -> bool:
        d = self.detectors.get(name)
        return d is not None and d.state is not Health.HEALTHY
