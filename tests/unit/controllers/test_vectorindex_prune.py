"""After an ingestion finishes, the rows of earlier ingestions go, unless documents failed: whole
passes, with the collection manager faked (the decision itself: test_vectorindex_decide.py)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from agentfleet_contract import ingest_progress as progress
from agentfleet_contract.vectorindex import VectorIndex
from agentfleet_milvus import CollectionManager, CollectionState, Reconciled

from agentfleet.controllers import vectorindex as ctl
from agentfleet.reconcile.events import EventRecorder, post_with_kube
from agentfleet.render import vectorindex as render
from tests.builders import Index

URI = "http://milvus:19530"


class FakeKube:
    """The ConfigMap source, and the ingestion Job once created: complete, one worker's record."""

    def __init__(self, failed: int = 0) -> None:
        self.events: list[tuple[str, str, str]] = []
        self.objects: dict[tuple[str, str], dict[str, Any]] = {("ConfigMap", "docs"): {"data": {"a.md": "A."}}}
        self.failed = failed
        self.status: dict[str, Any] = {}
        self.tag = ""  # the row tag the worker reports (tag_of)

    def event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return copy.deepcopy(self.objects.get((kind, name)))

    def apply(self, obj: dict[str, Any], *, force: bool = True) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        if obj["kind"] == "Job":
            obj["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
        self.objects[(obj["kind"], obj["metadata"]["name"])] = obj
        return obj

    def list(
        self, api_version: str, kind: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        if kind == "Job":
            return [copy.deepcopy(o) for (k, _), o in self.objects.items() if k == "Job"]
        record = progress.WorkerProgress(
            worker=0, workers=1, revision=self.tag, state="Succeeded", documents_total=3,
            documents_done=3 - self.failed, documents_failed=self.failed, chunks=6,
        )  # fmt: skip
        state = {"terminated": {"message": progress.termination_message(record)}}
        return [{"metadata": {"name": "p0"}, "status": {"containerStatuses": [{"state": state}]}}]

    def delete(self, *_: Any, **__: Any) -> bool:
        return True

    def merge_patch_status(
        self, api_version: str, kind: str, name: str, namespace: str, status: dict[str, Any]
    ) -> dict[str, Any]:
        self.status.update(copy.deepcopy(status))
        return {}


class FakeManager:
    pruned: list[str] = []
    version = None

    @classmethod
    def connect(cls, target: Any, spec: Any) -> FakeManager:
        return cls()

    def describe(self, *, rows: bool = True, index: bool = True) -> CollectionState:
        return CollectionState(exists=True, row_count=6, load_state="Loaded", dimension=384, shards=1)

    def carry_out(self, plan: Any, state: CollectionState, **_: Any) -> Reconciled:
        return Reconciled(CollectionState(exists=True, row_count=6, load_state="Loaded"))

    def count_rows(self, load_state: Any) -> int:
        return 6

    def prune_revisions(self, keep: str) -> None:
        FakeManager.pruned.append(keep)


def vi(**spec: Any) -> dict[str, Any]:
    return Index("docs").ns("ns").meta(generation=1, uid="u1").spec(dimension=384).spec(**spec).obj()


@pytest.fixture(autouse=True)
def fake_milvus(monkeypatch: pytest.MonkeyPatch) -> None:
    FakeManager.pruned = []
    monkeypatch.setattr(CollectionManager, "connect", FakeManager.connect)


def tag_of(obj: dict[str, Any]) -> str:
    v = VectorIndex.model_validate(obj)
    return render.row_tag("v1", render.ingestion_key(v.spec, "v1", URI))


def test_a_chunking_change_keeps_the_source_revision_but_changes_the_row_tag() -> None:
    assert tag_of(vi()) != tag_of(vi(chunking={"maxTokens": 200, "overlapTokens": 20}))
    assert tag_of(vi()).startswith("v1+")


def passes(kube: FakeKube, obj: dict[str, Any], n: int) -> ctl.VectorIndexState:
    state, events = ctl.VectorIndexState(), EventRecorder(post_with_kube(kube))
    for _ in range(n):
        live = copy.deepcopy(obj)
        live["status"] = copy.deepcopy(kube.status)
        ctl.VectorIndexPass(kube, events, live, state).run()
    return state


def test_a_finished_ingestion_prunes_other_tags_once_per_tag() -> None:
    obj = vi()
    kube = FakeKube()
    kube.tag = tag_of(obj)
    state = passes(kube, obj, 3)  # the first pass creates the Job (complete at once), every later one sees it
    assert FakeManager.pruned == [kube.tag] and state.pruned == {kube.tag}
    assert [r for _, r, _ in kube.events if r.startswith("StaleChunks")] == ["StaleChunksPruned"]
    assert kube.status["phase"] == "Ready"


def test_failed_documents_keep_the_earlier_rows_and_say_so() -> None:
    obj, kube = vi(), FakeKube(failed=2)
    kube.tag = tag_of(obj)
    passes(kube, obj, 2)
    assert FakeManager.pruned == []
    kept = [e for e in kube.events if e[1] == "StaleChunksKept"]
    assert kept and kept[0][0] == "Warning" and "2 document(s) failed" in kept[0][2]
