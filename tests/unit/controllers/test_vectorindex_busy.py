"""What a VectorIndex pass costs while an ingestion Job never finishes (issue 22).

A Job whose pods are never scheduled stays unfinished; the controller used to pass every 10 s and
each pass described the collection three times, each description counting every row (Milvus Lite
answers DescribeIndex and GetCollectionStatistics by counting the live rows, and count(*) scans
them): about 0.85 of a core on 16,489 rows. Here the passes run against an in-memory Milvus
client that counts the requests that scan rows; the collection manager and the pass are real."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from agentfleet_milvus import MilvusTarget, MilvusUnavailable
from agentfleet_milvus.schema import PROP_INDEX, PROP_REPLICAS, PROP_SHARDS, CollectionSpec

from agentfleet.controllers import vectorindex as ctl
from agentfleet.reconcile.events import EventRecorder, post_with_kube

NS = "ns"
SCANS = ("list_indexes", "describe_index", "query", "get_collection_stats")  # each a pass over every row on Milvus Lite


# --- the pure decisions ----------------------------------------------------------------------------


def test_busy_passes_back_off_while_nothing_changes_and_start_over_on_a_change() -> None:
    delays, d = [], None
    for _ in range(7):
        d = ctl.next_busy_delay(d, changed=False)
        delays.append(d)
    assert delays == [10.0, 20.0, 40.0, 80.0, 120.0, 120.0, 120.0]
    assert ctl.next_busy_delay(120.0, changed=True) == 10.0


def test_rows_are_counted_again_only_when_what_they_depend_on_changed_or_the_count_is_old() -> None:
    seen = (1, "Loaded", ("job-a", [], 0, 0, 0))
    last = ctl.RowCount(100, seen, at=1000.0)
    assert ctl.rows_due(None, seen, 1000.0)
    assert not ctl.rows_due(last, seen, 1000.0 + ctl.DETAIL_MAX_AGE_SECONDS - 1)
    assert ctl.rows_due(last, seen, 1000.0 + ctl.DETAIL_MAX_AGE_SECONDS)
    assert ctl.rows_due(last, (1, "Loaded", ("job-a", ["Complete"], 2, 10, 50)), 1001.0)  # the Job finished
    assert ctl.rows_due(last, (2, "Loaded", ("job-a", [], 0, 0, 0)), 1001.0)  # the spec changed
    assert ctl.rows_due(last, (1, "Loading", ("job-a", [], 0, 0, 0)), 1001.0)


def test_the_index_is_described_on_the_first_pass_then_only_when_the_check_is_old() -> None:
    assert ctl.index_check_due(None, 5.0)
    assert not ctl.index_check_due(5.0, 5.0 + ctl.DETAIL_MAX_AGE_SECONDS - 1)
    assert ctl.index_check_due(5.0, 5.0 + ctl.DETAIL_MAX_AGE_SECONDS)


# --- passes against an in-memory Milvus -------------------------------------------------------------


class FakeMilvus:
    """The MilvusClient calls the collection manager makes, for one loaded HNSW collection."""

    def __init__(self, rows: int = 16489, record: bool = True) -> None:
        spec = CollectionSpec(name="docs", dimension=384, index_type="HNSW", index_params={})
        self.props = {PROP_SHARDS: "1", PROP_REPLICAS: "1"} | ({PROP_INDEX: spec.index_record()} if record else {})
        self.rows = rows
        self.calls: list[str] = []

    def scans(self) -> int:
        return sum(c in SCANS for c in self.calls)

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"unexpected Milvus call {name}")

    def _call(self, name: str) -> None:
        self.calls.append(name)

    def get_server_version(self, **_: Any) -> str:
        return "milvus_lite-3.2.2"  # as Milvus Lite answers: no version to hold against the spec

    def has_collection(self, name: str, **_: Any) -> bool:
        self._call("has_collection")
        return True

    def describe_collection(self, name: str, **_: Any) -> dict[str, Any]:
        self._call("describe_collection")
        return {"fields": [{"name": "vector", "params": {"dim": 384}}], "properties": dict(self.props), "num_shards": 1}

    def get_load_state(self, name: str, **_: Any) -> dict[str, Any]:
        self._call("get_load_state")
        return {"state": "Loaded"}

    def list_indexes(self, name: str, **_: Any) -> list[str]:
        self._call("list_indexes")
        return ["vector"]

    def describe_index(self, name: str, index: str, **_: Any) -> dict[str, Any]:
        self._call("describe_index")
        return {"index_type": "HNSW", "metric_type": "COSINE", "total_rows": self.rows}

    def describe_replica(self, name: str, **_: Any) -> list[Any]:
        self._call("describe_replica")
        raise RuntimeError("UNIMPLEMENTED")  # as Milvus Lite answers

    def query(self, name: str, **_: Any) -> list[dict[str, int]]:
        self._call("query")
        return [{"count(*)": self.rows}]

    def get_collection_stats(self, name: str, **_: Any) -> dict[str, int]:
        self._call("get_collection_stats")
        return {"row_count": self.rows}

    def list_partitions(self, name: str, **_: Any) -> list[str]:
        self._call("list_partitions")
        return ["_default"]

    def alter_collection_properties(self, name: str, properties: dict[str, str], **_: Any) -> None:
        self._call("alter_collection_properties")
        self.props.update(properties)


class FakeKube:
    """A ConfigMap source and an ingestion Job whose pods never run (no pods, no Job status)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], dict[str, Any]] = {("ConfigMap", "corpus"): {"data": {"a.md": "Alpha."}}}
        self.events: list[tuple[str, str, str]] = []
        self.status: dict[str, Any] = {}

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return copy.deepcopy(self.objects.get((kind, name)))

    def apply(self, obj: dict[str, Any], *, force: bool = True) -> dict[str, Any]:
        self.objects[(obj["kind"], obj["metadata"]["name"])] = copy.deepcopy(obj)
        return obj

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for (k, _), o in self.objects.items() if k == kind and kind == "Job"]

    def delete(self, *_: Any, **__: Any) -> bool:
        return True

    def merge_patch_status(
        self, api_version: str, kind: str, name: str, namespace: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        self.status.update(copy.deepcopy(status))
        return {}

    def event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))


def vi(generation: int = 1) -> dict[str, Any]:
    spec = {
        "milvus": {"uri": "http://milvus:19530"},
        "collection": "docs",
        "dimension": 384,
        "source": {"configMap": {"name": "corpus"}},
    }
    return {
        "apiVersion": "agentfleet.io/v1alpha1",
        "kind": "VectorIndex",
        "metadata": {"name": "docs", "namespace": NS, "uid": "u1", "generation": generation},
        "spec": spec,
    }


@pytest.fixture
def milvus(monkeypatch: pytest.MonkeyPatch) -> FakeMilvus:
    fake = FakeMilvus()
    monkeypatch.setattr(MilvusTarget, "connect", lambda self, **_: fake)
    return fake


def passes(
    kube: FakeKube, state: ctl.VectorIndexState, n: int, obj: dict[str, Any] | None = None
) -> list[float | None]:
    events = EventRecorder(post_with_kube(kube))
    out = []
    for _ in range(n):
        live = obj or vi()
        live["status"] = copy.deepcopy(kube.status)
        out.append(ctl.VectorIndexPass(kube, events, live, state).run())
    return out


def test_a_job_that_never_finishes_is_watched_ever_less_often_and_without_scanning_rows(milvus: FakeMilvus) -> None:
    kube, state = FakeKube(), ctl.VectorIndexState()
    delays = passes(kube, state, 1)
    assert kube.status["phase"] == "Ready" and kube.status["rowCount"] == 16489  # an older revision keeps serving
    assert [c["reason"] for c in kube.status["conditions"] if c["type"] == "Ingested"] == ["Ingesting"]
    first = milvus.scans()
    assert first <= 3, milvus.calls  # the first pass describes the index and counts the rows, once each

    delays += passes(kube, state, 6)
    assert delays == [10.0, 20.0, 40.0, 80.0, 120.0, 120.0, 120.0]
    assert milvus.scans() == first, [c for c in milvus.calls if c in SCANS]
    assert kube.status["rowCount"] == 16489


def test_a_finished_job_has_the_rows_counted_again_and_ends_the_busy_passes(
    milvus: FakeMilvus, monkeypatch: pytest.MonkeyPatch
) -> None:
    kube, state = FakeKube(), ctl.VectorIndexState()
    passes(kube, state, 4)
    before = milvus.scans()
    # The Job finishes: the job controller's Complete condition and the workers' termination records.
    job = next(o for (k, _), o in kube.objects.items() if k == "Job")
    job["status"] = {
        "conditions": [{"type": "Complete", "status": "True"}],
        "startTime": "2026-01-01T00:00:00Z",
        "completionTime": "2026-01-01T00:01:00Z",
    }
    milvus.rows = 16500
    pruned: list[str] = []
    monkeypatch.setattr(ctl.CollectionManager, "prune_revisions", lambda self, keep: pruned.append(keep))
    assert passes(kube, state, 1) == [None]  # nothing under way: events and the resync bring the next pass
    assert pruned and kube.status["rowCount"] == 16500 and milvus.scans() == before + 1
    assert kube.status["phase"] == "Ready" and state.busy_delay is None


def test_a_collection_without_our_index_record_gets_one_and_later_passes_trust_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fake = FakeMilvus(record=False)
    monkeypatch.setattr(MilvusTarget, "connect", lambda self, **_: fake)
    kube, state = FakeKube(), ctl.VectorIndexState()
    passes(kube, state, 1)
    assert PROP_INDEX in fake.props
    first = fake.scans()
    passes(kube, state, 3)
    assert fake.scans() == first and kube.status["indexType"] == "HNSW"


def test_an_unreachable_milvus_is_reported_without_what_the_remote_end_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(self: Any, **_: Any) -> Any:
        raise MilvusUnavailable("Milvus unavailable: UNAVAILABLE: internal-billing-db v9.1 banner")

    monkeypatch.setattr(MilvusTarget, "connect", refuse)
    kube, state = FakeKube(), ctl.VectorIndexState()
    with pytest.raises(ctl.MilvusNotReady):
        passes(kube, state, 1)
    texts = [c["message"] for c in kube.status["conditions"]] + [e[2] for e in kube.events]
    assert any(ctl.MILVUS_UNREACHABLE in t for t in texts)
    assert not any("billing" in t for t in texts)


def test_milvus_credentials_without_consent_are_not_sent_and_status_says_how_to_label_them(milvus: FakeMilvus) -> None:
    kube, state = FakeKube(), ctl.VectorIndexState()
    data = {"username": "dQ==", "password": "cA=="}
    kube.objects[("Secret", "creds")] = {"metadata": {"name": "creds", "labels": {}}, "data": data}
    obj = vi()
    obj["spec"]["milvus"]["credentials"] = {"secretName": "creds"}
    with pytest.raises(ctl.MilvusNotReady):
        passes(kube, state, 1, obj)
    ready = next(c for c in kube.status["conditions"] if c["type"] == "Ready")
    assert "kubectl label secret -n" in ready["message"] and "agentfleet.io/consent=true" in ready["message"]
    assert milvus.calls == []  # the credentials never reached Milvus
