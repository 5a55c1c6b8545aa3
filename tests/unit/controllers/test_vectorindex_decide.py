"""The VectorIndex pass's decide step as a pure function: an ``Observed`` in, a ``Plan`` or a
``Refused`` out, with no Kubernetes API and no Milvus."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest
from agentfleet_contract import ingest_progress as progress
from agentfleet_contract.vectorindex import VectorIndex
from agentfleet_milvus import CollectionState, ImmutableFieldConflict, MilvusUnavailable

from agentfleet.controllers.vectorindex.deciding import decide, ingestion_objects
from agentfleet.controllers.vectorindex.records import (
    CollectionSeen,
    Credentials,
    JobSeen,
    Memory,
    Observed,
    Plan,
    ReadCollection,
)
from agentfleet.reconcile.shape import Refused
from agentfleet.render import vectorindex as render
from tests.builders import Index

NS = "team-a"
URI = "http://milvus:19530"
IMAGE = "runtime:test"
CONSENT = {"agentfleet.io/consent": "true"}


def vi(**spec: Any) -> VectorIndex:
    return VectorIndex.model_validate(
        Index("docs").ns(NS).meta(generation=3, uid="u1").spec(dimension=384).spec(**spec).obj()
    )


def observed(v: VectorIndex, **fields: Any) -> Observed:
    """What observe would hand decide for ``v``: an external Milvus at URI, no collection in it
    yet, no Job yet."""
    obs = Observed(
        ns=NS,
        name="docs",
        generation=3,
        vi=v,
        status_in={},
        conditions_in=(),
        now=1000.0,
        image=IMAGE,
        milvus_live=None,
        milvus_kind_missing=False,
        endpoint=URI,
        endpoint_why=f"using {URI}",
        credentials=Credentials(),
        credentials_problem=None,
        source_seen="cafe",
        claim=None,
        job=None,
        memory=Memory(frozenset(), None, None),
        collection=CollectionSeen(CollectionState(exists=False)),
    )
    obs = replace(obs, **fields)
    if obs.job is None and v.spec.source is not None and obs.endpoint is not None:
        obs = replace(obs, job=job_seen(obs))
    return obs


def job_name(obs: Observed) -> str:
    return ingestion_objects(obs.vi, obs.image, obs.source_seen, URI)[1][-1]["metadata"]["name"]


def job_seen(
    obs: Observed, live: dict[str, Any] | None = None, *terminations: str, others: tuple[str, ...] = ()
) -> JobSeen:
    return JobSeen(job_name(obs), live, others, terminations)


def tag(obs: Observed) -> str:
    revision = render.source_revision(obs.vi.spec, obs.source_seen)
    return render.row_tag(revision, render.ingestion_key(obs.vi.spec, revision, URI))


def worker(obs: Observed, done: int, failed: int = 0) -> str:
    record = progress.WorkerProgress(
        worker=0, workers=1, revision=tag(obs), state="Succeeded", documents_total=done + failed,
        documents_done=done, documents_failed=failed, chunks=done * 2,
    )  # fmt: skip
    return progress.termination_message(record)


def completed(obs: Observed, *terminations: str) -> Observed:
    live = {"metadata": {"name": job_name(obs)}, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    return replace(obs, job=job_seen(obs, live, *terminations))


def plan_of(obs: Observed) -> Plan:
    plan = decide(obs)
    assert isinstance(plan, Plan), plan
    return plan


# --- Milvus ------------------------------------------------------------------------------------------


def test_an_external_milvus_is_used_as_it_is_and_the_index_is_described_on_the_first_pass_only() -> None:
    plan = plan_of(observed(vi(source=None)))
    assert plan.milvus is None and plan.stop is None and plan.endpoint == URI
    assert plan.milvus_condition == ("MilvusReady", True, "External", f"using {URI}")
    assert plan.ingestion is None and plan.index_detail
    recent = observed(vi(source=None), memory=Memory(frozenset(), None, 999.0))
    assert not plan_of(recent).index_detail


def test_a_managed_milvus_not_ready_is_applied_and_waited_for_without_touching_the_collection() -> None:
    managed = vi(milvus={"managed": {}}, source=None)
    plan = plan_of(observed(managed, endpoint=None, endpoint_why="the Milvus object does not exist yet"))
    assert plan.milvus is not None and plan.milvus["kind"] == "Milvus"
    assert plan.endpoint is None and plan.ingestion is None and plan.stop is None
    assert [c[:3] for c in plan.waiting] == [
        ("Ready", False, "WaitingForMilvus"),
        ("Progressing", True, "CreatingMilvus"),
    ]


def test_a_missing_milvus_kind_stops_the_pass_with_nothing_to_apply() -> None:
    plan = plan_of(observed(vi(milvus={"managed": {}}), endpoint=None, milvus_kind_missing=True))
    assert plan.milvus is None and plan.stop is not None
    assert plan.stop.phase == "Pending" and plan.stop.post[1] == "MilvusOperatorMissing"


def test_credentials_without_consent_stop_the_pass_before_milvus_and_the_ingestion() -> None:
    plan = plan_of(observed(vi(), credentials_problem="spec.milvus.credentials: ... kubectl label secret ..."))
    assert plan.stop is not None and plan.stop.post == (
        "Warning",
        "MilvusUnavailable",
        "spec.milvus.credentials: ... kubectl label secret ...",
    )
    assert plan.ingestion is None


# --- the collection (agentfleet_milvus.plan_collection; its cases: tests/unit/ingest/test_milvus_planning.py) ---


def test_the_collection_is_read_from_milvus_before_it_is_planned_and_only_once_milvus_is_reached() -> None:
    first = decide(observed(vi(source=None), collection=None))
    assert first == ReadCollection(rows=True, index=True)  # the first pass of this process describes the index
    recent = decide(observed(vi(source=None), collection=None, memory=Memory(frozenset(), None, 999.0)))
    assert recent == ReadCollection(rows=False, index=False)  # later ones trust the record
    refused = observed(vi(), collection=None, credentials_problem="spec.milvus.credentials: ...")
    assert plan_of(refused).collection is None and plan_of(refused).collection_failure is None
    waiting = observed(vi(milvus={"managed": {}}), collection=None, endpoint=None, endpoint_why="not yet")
    assert plan_of(waiting).collection is None


def test_a_missing_collection_is_planned_created_and_a_conflicting_one_refused() -> None:
    plan = plan_of(observed(vi(source=None)))
    assert plan.collection is not None and plan.collection.create and plan.collection_failure is None
    other = CollectionState(exists=True, dimension=768, shards=1, load_state="Loaded")
    conflict = plan_of(observed(vi(source=None), collection=CollectionSeen(other))).collection_failure
    assert isinstance(conflict, ImmutableFieldConflict) and conflict.conflicts[0].field == "spec.dimension"


def test_a_record_of_another_index_is_read_again_and_a_failed_read_is_the_pass_s_failure() -> None:
    recorded = CollectionState(exists=True, dimension=384, shards=1, index_type="IVF_FLAT", index_described=False)
    assert decide(observed(vi(), collection=CollectionSeen(recorded))) == ReadCollection(rows=False, index=True)
    down = MilvusUnavailable("Milvus unavailable: refused")
    plan = plan_of(observed(vi(), collection=CollectionSeen(None, failure=down)))
    assert plan.collection is None and plan.collection_failure is down and plan.ingestion is not None


# --- the ingestion ---------------------------------------------------------------------------------------


def test_a_new_revision_creates_its_job_deletes_earlier_ones_and_is_under_way() -> None:
    obs = observed(vi())
    obs = replace(obs, job=job_seen(obs, None, others=("docs-ingest-old",)))
    ing = plan_of(obs).ingestion
    assert ing is not None
    assert [o["kind"] for o in ing.create] == ["Job"] and ing.create[-1]["metadata"]["name"] == ing.job_name
    assert ing.delete == ("docs-ingest-old",)
    assert ing.busy and ing.condition[:3] == ("Ingested", False, "Ingesting")
    assert not ing.prune and ing.kept == 0


def test_an_existing_job_is_never_created_again() -> None:
    obs = observed(vi())
    running = replace(obs, job=job_seen(obs, {"metadata": {"name": job_name(obs)}, "status": {}}))
    ing = plan_of(running).ingestion
    assert ing is not None and ing.create == () and ing.busy


def test_a_completed_ingestion_prunes_the_rows_of_earlier_ones_once_per_tag() -> None:
    obs = completed(observed(vi()), worker(observed(vi()), done=4))
    ing = plan_of(obs).ingestion
    assert ing is not None and ing.prune and ing.kept == 0 and not ing.busy
    assert ing.condition == (
        "Ingested",
        True,
        "IngestionSucceeded",
        f"revision {ing.revision}: 4 documents, 8 chunks, 0 failed",
    )
    again = replace(obs, memory=Memory(frozenset({ing.tag}), None, None))
    ing_again = plan_of(again).ingestion
    assert ing_again is not None and not ing_again.prune and ing_again.condition == ing.condition


def test_failed_documents_keep_the_earlier_rows() -> None:
    obs = completed(observed(vi()), worker(observed(vi()), done=3, failed=2))
    ing = plan_of(obs).ingestion
    assert ing is not None and not ing.prune and ing.kept == 2


def test_a_failed_job_is_reported_with_its_reason() -> None:
    obs = observed(vi())
    live = {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}}
    ing = plan_of(replace(obs, job=job_seen(obs, live))).ingestion
    assert ing is not None and ing.condition[:3] == ("Ingested", False, "IngestionFailed")
    assert ing.post == ("Warning", "IngestionFailed", f"Job {ing.job_name}: BackoffLimitExceeded")
    assert not ing.prune and not ing.busy


# --- a volume source needs its owner's consent (issue 57, finding 12) ------------------------------------


def pvc_source(claim: str = "corpus") -> dict[str, Any]:
    return {"persistentVolumeClaim": {"claimName": claim, "path": "/docs"}}


@pytest.mark.parametrize(
    ("claim", "reason"),
    [
        (None, "PersistentVolumeClaimNotFound"),
        ({"metadata": {"name": "corpus", "labels": {}}}, "PersistentVolumeClaimNotConsented"),
        (
            {"metadata": {"name": "corpus", "labels": {"agentfleet.io/consent": "yes"}}},
            "PersistentVolumeClaimNotConsented",
        ),
    ],
)
def test_a_source_claim_without_consent_is_refused_naming_the_field_and_the_fix(
    claim: dict[str, Any] | None, reason: str
) -> None:
    refused = decide(observed(vi(source=pvc_source()), claim=claim))
    assert isinstance(refused, Refused)
    assert refused.reason == reason and refused.field == "spec.source.persistentVolumeClaim.claimName"
    assert refused.message.startswith("spec.source.persistentVolumeClaim.claimName: PersistentVolumeClaim corpus")
    assert refused.retry_after is not None
    if claim is not None:
        assert f"kubectl label pvc -n {NS} corpus agentfleet.io/consent=true" in refused.message


def test_a_consented_source_claim_is_mounted_read_only() -> None:
    obs = observed(vi(source=pvc_source()), claim={"metadata": {"name": "corpus", "labels": CONSENT}})
    ing = plan_of(obs).ingestion
    assert ing is not None
    volumes = ing.create[-1]["spec"]["template"]["spec"]["volumes"]
    assert {"name": "source", "persistentVolumeClaim": {"claimName": "corpus", "readOnly": True}} in volumes


# --- pure ----------------------------------------------------------------------------------------------


def test_decide_changes_nothing_it_is_given_and_answers_the_same_twice() -> None:
    obs = completed(observed(vi()), worker(observed(vi()), done=4))
    before = copy.deepcopy(obs)
    assert decide(obs) == decide(obs)
    assert obs == before
