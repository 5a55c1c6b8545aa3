"""After an ingestion finishes, the rows of earlier ingestions go, unless documents failed."""

from __future__ import annotations

from typing import Any

import pytest
from agentfleet_contract.vectorindex import VectorIndex

from agentfleet.controllers import vectorindex as ctl
from agentfleet.reconcile.events import EventRecorder, post_with_kube
from agentfleet.render import vectorindex as render
from tests.builders import Index


class FakeKube:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((type_, reason, message))

    def get(self, *_: Any, **__: Any) -> None:
        return None


class FakeManager:
    pruned: list[str] = []

    @classmethod
    def connect(cls, target: Any, spec: Any) -> FakeManager:
        return cls()

    def prune_revisions(self, keep: str) -> None:
        FakeManager.pruned.append(keep)


def vi(**spec: Any) -> dict[str, Any]:
    return Index("docs").ns("ns").meta(generation=1).spec(dimension=384).spec(**spec).obj()


@pytest.fixture(autouse=True)
def fake_milvus(monkeypatch):
    FakeManager.pruned = []
    monkeypatch.setattr(ctl, "CollectionManager", FakeManager)


def tag_of(obj: dict[str, Any]) -> str:
    v = VectorIndex.model_validate(obj)
    return render.row_tag("v1", render.ingestion_key(v.spec, "v1", "http://milvus:19530"))


def test_a_chunking_change_keeps_the_source_revision_but_changes_the_row_tag() -> None:
    assert tag_of(vi()) != tag_of(vi(chunking={"maxTokens": 200, "overlapTokens": 20}))
    assert tag_of(vi()).startswith("v1+")


def test_a_finished_ingestion_prunes_other_tags_once_per_tag() -> None:
    obj, state = vi(), ctl.VectorIndexState()
    kube = FakeKube()
    events = EventRecorder(post_with_kube(kube))
    for _ in range(3):  # every later pass of the same finished ingestion
        ctl.VectorIndexPass(kube, events, obj, state).prune_earlier_ingestions(
            VectorIndex.model_validate(obj), "http://milvus:19530", tag_of(obj), failed=0
        )
    assert FakeManager.pruned == [tag_of(obj)]
    assert [r for _, r, _ in kube.events] == ["StaleChunksPruned"]


def test_failed_documents_keep_the_earlier_rows_and_say_so() -> None:
    obj, kube = vi(), FakeKube()
    ctl.VectorIndexPass(kube, EventRecorder(post_with_kube(kube)), obj).prune_earlier_ingestions(
        VectorIndex.model_validate(obj), "http://milvus:19530", tag_of(obj), failed=2
    )
    assert FakeManager.pruned == []
    assert (
        kube.events
        and kube.events[0][:2] == ("Warning", "StaleChunksKept")
        and "2 document(s) failed" in kube.events[0][2]
    )
