"""The decide step of a VectorIndex pass, pure: from an ``Observed`` to a ``Plan`` (or a
``Refused``, or ``ReadCollection`` while the collection is not read yet): the managed Milvus to
apply and whether it serves, what stops the pass before Milvus is called, whether to describe the
index, the collection's Milvus calls (agentfleet_milvus.plan_collection: create, refuse an
immutable field's change, build the index, load, add partitions), and the ingestion (its Job, the
earlier Jobs to delete, its progress, whether the rows of earlier ingestions go)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentfleet_contract import ingest_progress as progress
from agentfleet_contract.conditions import DEGRADED, PROGRESSING, READY
from agentfleet_contract.vectorindex import VectorIndex
from agentfleet_milvus import CollectionPlan, CollectionSpec, DescribeIndex, MilvusError, plan_collection

from agentfleet.controllers.vectorindex.records import (
    CLAIM_RECHECK_SECONDS,
    INGESTED,
    MILVUS_READY,
    CollectionSeen,
    Condition,
    IngestionPlan,
    Observed,
    Plan,
    ReadCollection,
    Stop,
    index_check_due,
)
from agentfleet.reconcile.shape import Refused
from agentfleet.render import vectorindex as render
from agentfleet.render.common import claim_problem

OPERATOR_MISSING = (
    "the milvus.io/v1beta1 Milvus kind is not installed: install the Milvus Operator, or set spec.milvus.uri"
)
SOURCE_CLAIM_FIELD = "spec.source.persistentVolumeClaim.claimName"


def operator_missing() -> Stop:
    missing = "MilvusOperatorMissing"
    return Stop(
        "Pending",
        ((MILVUS_READY, False, missing, OPERATOR_MISSING), (READY, False, missing, OPERATOR_MISSING)),
        ("Warning", missing, OPERATOR_MISSING),
    )


def endpoint(managed: bool, uri: str, live: Mapping[str, Any] | None) -> tuple[str | None, str]:
    """Where Milvus answers (None while a managed one is not ready) and why not, or what serves it."""
    if not managed:
        return uri, f"using {uri}"
    ready, why = render.milvus_ready(dict(live) if live is not None else None)
    found = render.milvus_uri(dict(live) if live is not None else None)
    return (found, why) if ready and found is not None else (None, why)


def claim_refusal(obs: Observed) -> Refused | None:
    """A volume source is mounted (read-only) into the ingestion Job, whose image the spec's author
    chooses: only with its owner's consent, as every volume the operator mounts."""
    source = obs.vi.spec.source
    pvc = source.persistent_volume_claim if source is not None else None
    if pvc is None:
        return None
    claim = dict(obs.claim) if obs.claim is not None else None
    why = claim_problem(claim, SOURCE_CLAIM_FIELD, pvc.claim_name, obs.ns, writable=False)
    if why is None:
        return None
    return Refused(why[0], why[1], SOURCE_CLAIM_FIELD, retry_after=CLAIM_RECHECK_SECONDS)


def decide_collection(
    spec: CollectionSpec, seen: CollectionSeen
) -> tuple[CollectionPlan | None, MilvusError | None] | ReadCollection:
    """The collection's Milvus calls, or why there are none (a failed read, a refusal), from what
    was read of it; ReadCollection when the plan needs the index itself described."""
    if seen.state is None:
        return None, seen.failure
    decided = plan_collection(spec, seen.state, seen.version)
    if isinstance(decided, DescribeIndex):
        return ReadCollection(rows=False, index=True)
    if isinstance(decided, CollectionPlan):
        return decided, None
    return None, decided


def decide(obs: Observed) -> Plan | Refused | ReadCollection:
    refused = claim_refusal(obs)
    if refused is not None:
        return refused
    spec = obs.vi.spec
    milvus: dict[str, Any] | None = None
    waiting: tuple[Condition, ...] = ()
    if spec.milvus.managed is None:
        milvus_condition: Condition = (MILVUS_READY, True, "External", obs.endpoint_why)
    elif obs.milvus_kind_missing:
        return Plan(None, None, operator_missing(), None, (), False, None)
    else:
        milvus = render.render_milvus(obs.vi, expected_rows=obs.status_in.get("rowCount"))
        name, why = milvus["metadata"]["name"], obs.endpoint_why
        if obs.endpoint is None:
            milvus_condition = (MILVUS_READY, False, "MilvusNotReady", why)
            waiting = (
                (READY, False, "WaitingForMilvus", f"Milvus {name} is not ready: {why}"),
                (PROGRESSING, True, "CreatingMilvus", why),
            )
        else:
            milvus_condition = (MILVUS_READY, True, "MilvusReady", f"{name} serves {obs.endpoint}")
    stop = None
    if obs.endpoint is not None and obs.credentials_problem is not None:
        # Our own words (the Secret's consent), reported as Milvus being unreachable: nothing was sent.
        said = obs.credentials_problem
        stop = Stop(
            "Degraded",
            (
                (DEGRADED, True, "MilvusUnavailable", said),
                (READY, False, "MilvusUnavailable", f"cannot reach Milvus at {obs.endpoint}: {said}"),
            ),
            ("Warning", "MilvusUnavailable", said),
        )
    ingestion = None
    if spec.source is not None and obs.endpoint is not None and stop is None:
        ingestion = decide_ingestion(obs, obs.endpoint)
    index_detail = index_check_due(obs.memory.index_checked_at, obs.now)
    collection, failure = None, None
    if obs.endpoint is not None and stop is None:
        if obs.collection is None:
            return ReadCollection(rows=index_detail, index=index_detail)
        decided = decide_collection(CollectionSpec.from_vectorindex(spec), obs.collection)
        if isinstance(decided, ReadCollection):
            return decided
        collection, failure = decided
    return Plan(
        milvus=milvus,
        milvus_condition=milvus_condition,
        stop=stop,
        endpoint=obs.endpoint,
        waiting=waiting,
        index_detail=index_detail,
        ingestion=ingestion,
        collection=collection,
        collection_failure=failure,
    )


def ingestion_objects(
    vi: VectorIndex, image: str, source_seen: str | None, uri: str
) -> tuple[str, list[dict[str, Any]]]:
    """The source revision and the objects of its ingestion (the URL ConfigMap, then the Job);
    ``image`` when the spec names none."""
    revision = render.source_revision(vi.spec, source_seen)
    objs = render.render_ingestion(vi, image=vi.spec.ingestion.image or image, milvus_uri=uri, revision=revision)
    return revision, objs


def decide_ingestion(obs: Observed, uri: str) -> IngestionPlan:
    """The Job of the source revision (created once: its pod template is immutable), the earlier
    ones to delete, and how it stands, from its conditions and its workers' termination records."""
    spec = obs.vi.spec
    revision, objs = ingestion_objects(obs.vi, obs.image, obs.source_seen, uri)
    job_name = objs[-1]["metadata"]["name"]
    seen = obs.job
    if seen is None or seen.name != job_name:
        raise ValueError(f"observed Job {seen and seen.name} is not the ingestion's {job_name}")
    live = seen.live if seen.live is not None else objs[-1]
    records = [r for r in (progress.latest(t) for t in seen.terminations) if r is not None]
    tag = render.row_tag(revision, render.ingestion_key(spec, revision, uri))
    parallelism = spec.ingestion.parallelism
    summary = progress.merge(records, parallelism, tag)
    jstatus = live.get("status") or {}
    jconds = {c.get("type"): c for c in jstatus.get("conditions") or [] if c.get("status") == "True"}
    status: dict[str, Any] = {
        "revision": revision,
        "jobName": job_name,
        **{
            k: v
            for k, v in summary.status().items()
            if k in ("documentsTotal", "documentsDone", "documentsFailed", "chunks", "failures")
        },
    }
    if jstatus.get("startTime"):
        status["startedAt"] = jstatus["startTime"]
    post = None
    busy = prune = False
    kept = 0
    if "Failed" in jconds:
        why = jconds["Failed"].get("message") or jconds["Failed"].get("reason") or "the Job failed"
        errors = "; ".join(summary.errors)
        condition: Condition = (
            INGESTED,
            False,
            "IngestionFailed",
            f"Job {job_name}: {why}" + (f" ({errors})" if errors else ""),
        )
        post = ("Warning", "IngestionFailed", f"Job {job_name}: {why}")
    elif "Complete" in jconds:
        status["completedAt"] = jstatus.get("completionTime")
        # Once an ingestion has finished, the rows earlier ingestions wrote go (chunks of documents
        # since removed or changed, chunks cut or embedded under another spec); not while documents
        # failed: their old chunks are all the index has of them.
        if tag not in obs.memory.pruned:
            prune, kept = summary.documents_failed == 0, summary.documents_failed
        done = f"{summary.documents_done} documents, {summary.chunks} chunks, {summary.documents_failed} failed"
        condition = (INGESTED, True, "IngestionSucceeded", f"revision {revision}: {done}")
    else:
        busy = True
        reported = f"{summary.reported}/{parallelism} workers reported, {summary.chunks} chunks so far"
        condition = (INGESTED, False, "Ingesting", f"Job {job_name}: {reported}")
    return IngestionPlan(
        revision=revision,
        job_name=job_name,
        tag=tag,
        create=tuple(objs) if seen.live is None else (),
        delete=seen.others,
        status=status,
        condition=condition,
        post=post,
        busy=busy,
        prune=prune,
        kept=kept,
        seen=(
            job_name,
            tuple(sorted(t for t in jconds if t in ("Complete", "Failed"))),
            summary.reported,
            summary.documents_done,
            summary.chunks,
        ),
    )
