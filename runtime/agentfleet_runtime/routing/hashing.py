"""Rendezvous (highest-random-weight) hashing with bounded load. Pure: no I/O, no clock.

Why rendezvous and not a ring: every worker pod ranks the replicas for a task by the same hash of
(task key, replica name), so all pods agree on a task's replica without talking to each other or to a
router, and the rank list doubles as the failover order. When a replica joins, only the tasks whose
top score it now holds move (about 1/n of them); when one leaves, only its own tasks move, each to
its own next choice, so the survivors' caches stay warm.

Bounded load (consistent hashing with bounded loads, Mirrokni et al.): a replica whose in-flight
calls already reach ceil((1 + eps) x fair share) is skipped for the next one in the task's order.
The bound is applied to the in-flight counts this pod sees; with many pods each bounding its own
share, the fleet-wide share is bounded the same way without shared state.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping, Sequence


def score(key: str, replica: str) -> int:
    """64-bit weight of (key, replica). blake2b, not ``hash()``: it must agree across processes."""
    digest = hashlib.blake2b(key.encode() + b"\x00" + replica.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def rendezvous_order(key: str, replicas: Iterable[str]) -> list[str]:
    """Replicas ranked for ``key``: first is its home, the rest its failover order.
    Ties (astronomically rare) break by name so every pod still agrees."""
    return sorted(replicas, key=lambda r: (-score(key, r), r))


def balanced_homes(keys: Iterable[str], replicas: Sequence[str]) -> dict[str, str]:
    """A home replica for each key, at most ceil(keys / replicas) keys a replica: each key in name
    order takes the first replica of its rendezvous order with room. Every pod that knows the same
    keys and replicas computes the same homes, with no coordination. For LoRA adapters (the keys,
    from the ModelReplicaSet's spec.adapters): plain rendezvous homes 8 adapters on 4 replicas
    unevenly (3 or 4 on some, none on others), and a replica homing more adapters than its GPU
    slots swaps them in and out (adapter_bench.py)."""
    keys = sorted(set(keys))
    if not replicas or not keys:
        return {}
    cap = math.ceil(len(keys) / len(replicas))
    count: dict[str, int] = dict.fromkeys(replicas, 0)
    homes: dict[str, str] = {}
    for k in keys:
        r = next(r for r in rendezvous_order(k, replicas) if count[r] < cap)
        homes[k] = r
        count[r] += 1
    return homes


def load_cap(total_inflight: int, replicas: int, eps: float, floor: int = 1) -> int:
    """Most in-flight calls one replica may hold once the next call is placed:
    ceil((1 + eps) x (total + 1) / n), and at least ``floor`` (1: an idle fleet takes a call anywhere)."""
    if replicas <= 0:
        raise ValueError("no replicas")
    return max(floor, math.ceil((1.0 + eps) * (total_inflight + 1) / replicas - 1e-9))


def bounded_pick(order: Sequence[str], inflight: Mapping[str, int], eps: float, floor: int = 1) -> int:
    """Index in ``order`` of the first replica under the load cap.

    Some replica is always under the cap: the cap exceeds the mean load, so not every replica can be
    at or above it. The fallback return only guards against a caller passing inconsistent counts."""
    total = sum(inflight.get(r, 0) for r in order)
    cap = load_cap(total, len(order), eps, floor)
    for i, r in enumerate(order):
        if inflight.get(r, 0) < cap:
            return i
    return 0


def bounded_first(order: Sequence[str], inflight: Mapping[str, int], eps: float, floor: int = 1) -> list[str]:
    """``order`` with its bounded-load choice moved to the front; the remaining replicas keep
    their rank (they are the failover and hedge targets)."""
    if not order:
        return []
    i = bounded_pick(order, inflight, eps, floor)
    return [order[i], *order[:i], *order[i + 1 :]]


def bounded_order(
    key: str,
    replicas: Iterable[str],
    inflight: Mapping[str, int],
    eps: float,
    stay: str | None = None,
    floor: int = 1,
    home: str | None = None,
) -> list[str]:
    """The task's rendezvous order with the bounded-load choice moved to the front.

    ``stay``: the replica that served the task last, when that is not its rendezvous home (the
    load bound, a failover or a winning hedge moved it). It goes first while under the load cap,
    because that is where the task's KV cache now is: going back home would re-prefill the
    history there, and the bound would push the task out again at the next peak, so the task
    would flap between two replicas and miss the cache on both. So the bound moves tasks, not
    single calls. It also means that a replica that joins takes new tasks and the bound's
    overflow, not running tasks whose cache is elsewhere."""
    order = rendezvous_order(key, replicas)
    if home is not None and home in order and order[0] != home:
        order.remove(home)
        order.insert(0, home)
    if stay is not None and stay in order and order[0] != stay:
        order.remove(stay)
        order.insert(0, stay)
    return bounded_first(order, inflight, eps, floor)
