"""Replica-set sources: where the client learns the ready, non-draining replicas of a
ModelReplicaSet. ``StaticSource`` for tests, benchmarks and plain URLs; the Kubernetes watcher
lives in ``kube.py`` (the only module here that imports the kubernetes client).

A source only has to answer ``endpoints()`` with its latest view; the client reads it on every
call, so a change is in effect from the next call on, with no reshuffle step.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from agentfleet_runtime.routing.settings import Endpoint


class ReplicaSource(Protocol):
    def endpoints(self) -> tuple[Endpoint, ...]: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...


class StaticSource:
    """A fixed list that tests may replace at run time (``set``) to play scale-up, drain or loss."""

    def __init__(self, endpoints: Iterable[Endpoint | str]) -> None:
        self._endpoints: tuple[Endpoint, ...] = ()
        self.set(endpoints)

    def set(self, endpoints: Iterable[Endpoint | str]) -> None:
        self._endpoints = tuple(e if isinstance(e, Endpoint) else Endpoint(_name_of(e), e) for e in endpoints)

    def endpoints(self) -> tuple[Endpoint, ...]:
        return self._endpoints

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None


def _name_of(url: str) -> str:
    # A bare URL names itself: host:port is unique among the replicas of one set.
    return url.split("://", 1)[-1].split("/", 1)[0]


def endpoints_from_slices(
    slices: Iterable[dict[str, Any]], port_name: str = "http", path: str = "/v1"
) -> tuple[Endpoint, ...]:
    """Serving endpoints of a Service from its EndpointSlices (camelCase dicts as the API sends).

    Pure, so the selection rules are unit-tested without a cluster: an endpoint counts when its
    conditions say ready (and serving, and not terminating, where the server reports them); the
    name is the target pod's name (stable across address changes), else the address. Duplicates
    across slices (possible during a slice rebalance) collapse by name.
    """
    found: dict[str, Endpoint] = {}
    for sl in slices:
        ports = sl.get("ports") or []
        port = next((p.get("port") for p in ports if p.get("name") == port_name), None)
        if port is None and len(ports) == 1:
            port = ports[0].get("port")
        if port is None:
            continue
        ipv6 = sl.get("addressType") == "IPv6"
        for ep in sl.get("endpoints") or []:
            cond = ep.get("conditions") or {}
            if cond.get("ready") is False or cond.get("serving") is False or cond.get("terminating") is True:
                continue
            addresses = ep.get("addresses") or []
            if not addresses:
                continue
            host = f"[{addresses[0]}]" if ipv6 else addresses[0]
            name = ((ep.get("targetRef") or {}).get("name")) or addresses[0]
            found[name] = Endpoint(name, f"http://{host}:{port}{path}")
    return tuple(sorted(found.values(), key=lambda e: e.name))
