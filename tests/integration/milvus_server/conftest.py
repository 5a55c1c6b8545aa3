"""One real Milvus 2.3.5 standalone server for this package (e2e/harness/milvus_standalone.py): PyPI's
``milvus`` wheel, installed and extracted once into the cache, in a private network namespace.

Also a stand-in for the Kubernetes API (status, Events, Secrets) so a VectorIndex pass of the real
controller runs against the real server: the API side is not what these tests are about."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.harness.milvus_standalone import MilvusStandalone, milvus_standalone

NS = "ns"


@pytest.fixture(scope="package")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MilvusStandalone]:
    with milvus_standalone(tmp_path_factory.mktemp("milvus-standalone") / "data") as server:
        yield server


@pytest.fixture(scope="package")
def milvus_uri(standalone: MilvusStandalone) -> str:
    return standalone.uri


class ApiStandIn:
    """The Kube calls a VectorIndex pass makes when its spec has no source: status and Events."""

    def __init__(self) -> None:
        self.status: dict[str, Any] = {}
        self.events: list[tuple[str, str, str]] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return None

    def merge_patch_status(
        self, api_version: str, kind: str, name: str, namespace: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        self.status.update(copy.deepcopy(status))
        return {}

    def event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    def condition(self, type_: str) -> dict[str, Any]:
        return next(c for c in self.status.get("conditions", []) if c["type"] == type_)


def vectorindex(uri: str, collection: str, **spec: Any) -> dict[str, Any]:
    """A VectorIndex object (no source: the collection is filled outside agentfleet)."""
    return {
        "apiVersion": "agentfleet.io/v1alpha1",
        "kind": "VectorIndex",
        "metadata": {"name": collection.replace("_", "-"), "namespace": NS, "uid": "u1", "generation": 1},
        "spec": {"milvus": {"uri": uri}, "collection": collection, "dimension": 8, **spec},
    }


def run_pass(api: ApiStandIn, obj: dict[str, Any], state: Any = None) -> Exception | None:
    """One pass of the real VectorIndex controller; the MilvusNotReady it raises, if any."""
    from agentfleet.controllers import vectorindex as ctl
    from agentfleet.reconcile.events import EventRecorder, post_with_kube

    live = copy.deepcopy(obj)
    live["status"] = copy.deepcopy(api.status)
    try:
        ctl.VectorIndexPass(api, EventRecorder(post_with_kube(api)), live, state or ctl.VectorIndexState()).run()
    except ctl.MilvusNotReady as e:
        return e
    return None
