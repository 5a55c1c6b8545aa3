"""VectorIndex controller: the Milvus collection, the managed Milvus, and the ingestion Jobs.

Level-based: each pass recomputes everything from the spec and what exists (the Milvus object,
the collection, the Jobs and their pods), so a pass can be repeated or skipped freely. Passes
come from kopf events on VectorIndexes and their Jobs (agentfleet.handlers.vectorindex), and from
the periodic resync; a failing pass retries with backoff. No finalizer is added unless
spec.deletionPolicy is Delete, and then deletion waits at most spec.deletionTimeoutSeconds for
Milvus before it lets go.

A pass: validate -> Milvus endpoint (managed or external) -> collection (agentfleet_milvus) ->
ingestion Job and its progress (agentfleet.render.vectorindex, agentfleet_contract.ingest_progress)
-> row count -> summary conditions -> status.

What a pass costs stays bounded however large the collection and however long a Job runs: the
observations that cost a pass over every row on some servers (counting rows, describing the
index: Milvus Lite counts every live row to answer either) are made when something they depend on
changed, and at least every DETAIL_MAX_AGE_SECONDS, not on every pass; and while something is
under way, the next pass comes BUSY_RESYNC_SECONDS later, twice as late after each pass that saw
nothing change, at most BUSY_RESYNC_MAX_SECONDS (a Job that never finishes, e.g. pods that cannot
be scheduled, must not keep Milvus busy).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentfleet_contract import ingest_progress as progress
from agentfleet_contract.common import API_VERSION
from agentfleet_contract.conditions import DEGRADED, PROGRESSING, READY, set_condition
from agentfleet_contract.vectorindex import VectorIndex
from agentfleet_milvus import (
    CollectionManager,
    CollectionSpec,
    CollectionState,
    ImmutableFieldConflict,
    MilvusError,
    MilvusTarget,
    MilvusUnavailable,
    UnsupportedByServer,
)
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError
from pydantic import ValidationError

from agentfleet.controllers.settings import CONFIG
from agentfleet.kube import FIELD_MANAGER, Kube
from agentfleet.reconcile.controller import Controller, Key
from agentfleet.reconcile.errors import describe_validation_error
from agentfleet.reconcile.events import EventRecorder, post_with_kube
from agentfleet.reconcile.status import StatusWriter, normalize
from agentfleet.render import vectorindex as render
from agentfleet.render.common import secret_problem

log = logging.getLogger("agentfleet.vectorindex")

PLURAL = "vectorindexes"
KIND = "VectorIndex"
MILVUS_READY = "MilvusReady"
INGESTED = "Ingested"
BACKOFF_MIN, BACKOFF_MAX = 2.0, 120.0
# Passes while something is under way (ingestion, loading, Milvus starting) come this often after
# a change, twice as late after each pass that saw nothing change, at most BUSY_RESYNC_MAX_SECONDS.
BUSY_RESYNC_SECONDS = 10.0
BUSY_RESYNC_MAX_SECONDS = 120.0
# Row count and index description (a pass over every row on Milvus Lite) are redone when what they
# depend on changed, or when the last one is this old (a collection written outside agentfleet
# shows its new rowCount within this time; an index dropped by hand is rebuilt within it).
DETAIL_MAX_AGE_SECONDS = 300.0


# What status and Events say when Milvus cannot be reached, whatever the cause (the cause goes to
# the operator's log).
MILVUS_UNREACHABLE = MilvusUnavailable.default_public


class SecretRefused(MilvusUnavailable):
    """spec.milvus.credentials names a Secret the operator may not use (render.common.secret_problem)."""


class MilvusNotReady(Exception):
    """The pass could not finish (Milvus unreachable, a Milvus still starting): try again later."""

    def __init__(self, message: str, retry_after: float = 10.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class RowCount:
    rows: int
    seen: Any  # what the count depends on, as observed when counting (rows_due)
    at: float  # time.monotonic() of the count


def rows_due(last: RowCount | None, seen: Any, now: float, max_age: float = DETAIL_MAX_AGE_SECONDS) -> bool:
    """Whether to count the collection's rows again: never counted, what the count depends on
    (spec generation, load state, the ingestion's progress) changed, or the count is max_age old."""
    return last is None or last.seen != seen or now - last.at >= max_age


def index_check_due(last: float | None, now: float, max_age: float = DETAIL_MAX_AGE_SECONDS) -> bool:
    """Whether to describe the index itself instead of trusting our record of it (first pass of
    this process, or max_age since the last time). A spec that asks for another index than the
    record is described anyway (CollectionManager.ensure)."""
    return last is None or now - last >= max_age


def next_busy_delay(
    previous: float | None, changed: bool, base: float = BUSY_RESYNC_SECONDS, cap: float = BUSY_RESYNC_MAX_SECONDS
) -> float:
    """Seconds until the next pass while something is under way: ``base`` after a pass that saw
    something change (or the first busy pass), else twice the previous wait, at most ``cap``."""
    if changed or previous is None:
        return base
    return min(cap, previous * 2)


@dataclass
class VectorIndexState:
    """What the controller remembers of one VectorIndex between passes (safe to lose)."""

    pruned: set[str] = field(default_factory=set)  # row tags whose earlier ingestions' rows were deleted
    rows: RowCount | None = None  # the last row count
    index_checked_at: float | None = None  # time.monotonic() when the index was last described
    busy_delay: float | None = None  # the wait the last busy pass asked for; None when not busy
    busy_seen: str | None = None  # what that pass observed (its status, normalised)


def _b64(data: Mapping[str, str] | None, key: str) -> str:
    raw = (data or {}).get(key)
    return base64.b64decode(raw).decode() if raw else ""


class VectorIndexPass:
    """One reconcile of one VectorIndex; collects status and Events, writes them once at the end."""

    def __init__(
        self, kube: Kube, events: EventRecorder, obj: dict[str, Any], state: VectorIndexState | None = None
    ) -> None:
        self.kube = kube
        self.events = events
        self.state = state or VectorIndexState()
        self.obj = obj
        meta = obj["metadata"]
        self.ns, self.name, self.generation = meta["namespace"], meta["name"], meta.get("generation", 0)
        old = obj.get("status") or {}
        self.conditions: list[dict[str, Any]] = list(old.get("conditions") or [])
        self.status: dict[str, Any] = {}
        self.busy = False
        self.ingestion_seen: Any = None  # the ingestion's progress as this pass saw it
        self.pruned_now = False

    # --- helpers ---

    def condition(self, type_: str, ok: bool, reason: str, message: str = "") -> None:
        self.conditions = set_condition(self.conditions, type_, ok, reason, message, self.generation)

    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.event(self.obj, type_, reason, message)

    def write_status(self) -> None:
        self.status["conditions"] = self.conditions
        self.status["observedGeneration"] = self.generation
        try:
            StatusWriter(self.kube, API_VERSION, KIND, FIELD_MANAGER).patch(self.ns, self.name, self.status)
        except NotFoundError:
            pass  # deleted during the pass

    # --- the pass ---

    def run(self) -> float | None:
        """Returns seconds until the next pass is wanted (None: only on change or resync)."""
        try:
            vi = VectorIndex.model_validate(self.obj)
        except ValidationError as e:
            # The schema refuses what it can; this catches what only the operator's models know.
            msg = describe_validation_error(e)
            self.status["phase"] = "Failed"
            self.condition(READY, False, "InvalidSpec", msg)
            self.event("Warning", "InvalidSpec", msg)
            self.write_status()
            return None
        try:
            uri = self.milvus_endpoint(vi)
            if uri is None:
                return self.busy_wait()
            self.status["endpoint"] = uri
            manager = CollectionManager.connect(self.target(vi, uri), CollectionSpec.from_vectorindex(vi.spec))
            state = self.collection(vi, manager)
            if state is None:
                self.busy_wait(busy=False)
                return None
            self.ingestion(vi, uri)
            self.row_count(manager, state)
        except MilvusUnavailable as e:
            # Our own words only (a refused Secret), never what the remote end answered: status
            # must not tell a VectorIndex's author whether a port is open or what listens there.
            said = str(e) if isinstance(e, SecretRefused) else MILVUS_UNREACHABLE
            if not isinstance(e, SecretRefused):
                log.info("%s/%s: Milvus at %s unavailable: %.300s", self.ns, self.name, self.status.get("endpoint"), e)
            self.status["phase"] = "Degraded"
            self.condition(DEGRADED, True, "MilvusUnavailable", said)
            endpoint = self.status.get("endpoint")
            self.condition(READY, False, "MilvusUnavailable", f"cannot reach Milvus at {endpoint}: {said}")
            self.event("Warning", "MilvusUnavailable", said)
            self.write_status()
            raise MilvusNotReady(str(e)) from e
        except UnsupportedByServer as e:
            # Refused before anything was created: the spec needs a newer Milvus.
            self.status["phase"] = "Failed"
            self.condition(DEGRADED, True, "MilvusVersionUnsupported", e.public)
            self.condition(READY, False, "MilvusVersionUnsupported", e.public)
            self.event("Warning", "MilvusVersionUnsupported", e.public)
            self.write_status()
            raise MilvusNotReady(e.public, retry_after=BUSY_RESYNC_MAX_SECONDS) from e
        except MilvusError as e:
            # e.public: our words only; what the server answered goes to the log.
            log.info("%s/%s: Milvus at %s refused: %.500s", self.ns, self.name, self.status.get("endpoint"), e)
            self.status["phase"] = "Degraded"
            self.condition(DEGRADED, True, "MilvusRequestFailed", e.public)
            self.condition(READY, False, "MilvusRequestFailed", e.public)
            self.event("Warning", "MilvusRequestFailed", e.public)
            self.write_status()
            raise MilvusNotReady(e.public) from e
        self.summarise(vi)
        self.write_status()
        return self.busy_wait(busy=self.busy)

    def busy_wait(self, busy: bool = True) -> float | None:
        """The wait before the next pass: None when nothing is under way (events and the resync
        bring the next one), else next_busy_delay, judged by whether this pass's status differs
        from the last busy pass's."""
        if not busy:
            self.state.busy_delay = self.state.busy_seen = None
            return None
        seen = json.dumps(normalize({**self.status, "conditions": self.conditions}), sort_keys=True, default=str)
        self.state.busy_delay = next_busy_delay(self.state.busy_delay, seen != self.state.busy_seen)
        self.state.busy_seen = seen
        return self.state.busy_delay

    def milvus_endpoint(self, vi: VectorIndex) -> str | None:
        if vi.spec.milvus.managed is None:
            self.condition(MILVUS_READY, True, "External", f"using {vi.spec.milvus.uri}")
            return vi.spec.milvus.uri
        wanted = render.render_milvus(vi, expected_rows=(self.obj.get("status") or {}).get("rowCount"))
        try:
            self.kube.apply(wanted)
        except ResourceNotFoundError:
            msg = (
                "the milvus.io/v1beta1 Milvus kind is not installed: install the Milvus Operator, or set "
                "spec.milvus.uri"
            )
            self.status["phase"] = "Pending"
            self.condition(MILVUS_READY, False, "MilvusOperatorMissing", msg)
            self.condition(READY, False, "MilvusOperatorMissing", msg)
            self.event("Warning", "MilvusOperatorMissing", msg)
            self.write_status()
            raise MilvusNotReady(msg) from None
        live = self.kube.get(wanted["apiVersion"], wanted["kind"], wanted["metadata"]["name"], self.ns)
        ready, why = render.milvus_ready(live)
        uri = render.milvus_uri(live)
        if not ready or uri is None:
            self.status["phase"] = "Creating"
            self.condition(MILVUS_READY, False, "MilvusNotReady", why)
            self.condition(READY, False, "WaitingForMilvus", f"Milvus {wanted['metadata']['name']} is not ready: {why}")
            self.condition(PROGRESSING, True, "CreatingMilvus", why)
            self.write_status()
            return None
        self.condition(MILVUS_READY, True, "MilvusReady", f"{wanted['metadata']['name']} serves {uri}")
        return uri

    def target(self, vi: VectorIndex, uri: str) -> MilvusTarget:
        user = password = ""
        creds = vi.spec.milvus.credentials
        if creds is not None:
            secret = self.kube.get("v1", "Secret", creds.secret_name, self.ns)
            for key in (creds.username_key, creds.password_key):
                why = secret_problem(secret, "spec.milvus.credentials", creds.secret_name, key, self.ns)
                if why is not None:
                    raise SecretRefused(why[1])
            assert secret is not None
            user, password = _b64(secret.get("data"), creds.username_key), _b64(secret.get("data"), creds.password_key)
        return MilvusTarget(uri=uri, database=vi.spec.milvus.database, user=user, password=password)

    def collection(self, vi: VectorIndex, manager: CollectionManager) -> CollectionState | None:
        now = time.monotonic()
        detail = index_check_due(self.state.index_checked_at, now)
        try:
            done = manager.ensure(wait_loaded=False, detail=detail)
        except ImmutableFieldConflict as e:
            # Nothing was changed in Milvus: the spec asks for what the collection cannot become.
            self.status["phase"] = "Failed"
            self.condition(DEGRADED, True, "ImmutableFieldConflict", str(e))
            self.condition(READY, False, "ImmutableFieldConflict", str(e))
            self.event("Warning", "ImmutableFieldConflict", str(e))
            self.write_status()
            return None
        if done.created:
            self.event(
                "Normal", "CollectionCreated", f"created collection {vi.spec.collection} with {vi.spec.shards} shard(s)"
            )
        if done.index_rebuilt:
            self.event("Normal", "IndexRebuilt", f"rebuilt the {vi.spec.index.type} index over the existing rows")
        if done.reloaded:
            self.event("Normal", "Reloaded", f"loaded with {vi.spec.in_memory_replicas} in-memory replica(s)")
        for note in done.notes:
            self.event("Normal", "MilvusNote", note)
        if detail:
            self.state.index_checked_at = now
        self.status.update(done.state.status())
        if done.replicas_refused is not None:
            # The collection keeps serving with the replicas it had; the spec's number waits for capacity.
            self.condition(DEGRADED, True, "ReplicasRefused", done.replicas_refused)
            self.event("Warning", "ReplicasRefused", done.replicas_refused)
            self.busy = True
        else:
            self.condition(DEGRADED, False, "AsExpected")
        if done.state.load_state != "Loaded":
            self.busy = True
        return done.state

    def observed_source(self, vi: VectorIndex) -> str | None:
        """A fingerprint of what can be seen of the source: a ConfigMap's data."""
        src = vi.spec.source
        if src is None or src.config_map is None:
            return None
        cm = self.kube.get("v1", "ConfigMap", src.config_map.name, self.ns)
        if cm is None:
            return "missing"
        blob = json.dumps([cm.get("data") or {}, cm.get("binaryData") or {}], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def ingestion(self, vi: VectorIndex, uri: str) -> None:
        if vi.spec.source is None:
            self.condition(INGESTED, True, "NoSource", "the collection is filled outside agentfleet")
            return
        revision = render.source_revision(vi.spec, self.observed_source(vi))
        objs = render.render_ingestion(
            vi, image=vi.spec.ingestion.image or CONFIG.runtime_image, milvus_uri=uri, revision=revision
        )
        job = objs[-1]
        job_name = job["metadata"]["name"]
        live = self.kube.get("batch/v1", "Job", job_name, self.ns)
        if live is None:
            # A Job's pod template is immutable: create it once, never patch it.
            for o in objs:
                self.kube.apply(o)
            live = self.kube.get("batch/v1", "Job", job_name, self.ns) or job
            self.event(
                "Normal",
                "IngestionStarted",
                f"Job {job_name} ingests source revision {revision} with {vi.spec.ingestion.parallelism} worker(s)",
            )
        selector = ",".join(f"{k}={v}" for k, v in render.ingestion_selector(self.name).items())
        for old in self.kube.list("batch/v1", "Job", self.ns, selector):
            if old["metadata"]["name"] != job_name:
                self.kube.delete("batch/v1", "Job", old["metadata"]["name"], self.ns)
        pods = self.kube.list("v1", "Pod", self.ns, f"job-name={job_name}")
        records = [r for r in (progress.latest(_termination(p)) for p in pods) if r is not None]
        tag = render.row_tag(revision, render.ingestion_key(vi.spec, revision, uri))
        summary = progress.merge(records, vi.spec.ingestion.parallelism, tag)
        jstatus = live.get("status") or {}
        jconds = {c.get("type"): c for c in jstatus.get("conditions") or [] if c.get("status") == "True"}
        self.ingestion_seen = (
            job_name,
            sorted(t for t in jconds if t in ("Complete", "Failed")),
            summary.reported,
            summary.documents_done,
            summary.chunks,
        )
        ingestion: dict[str, Any] = {
            "revision": revision,
            "jobName": job_name,
            **{
                k: v
                for k, v in summary.status().items()
                if k in ("documentsTotal", "documentsDone", "documentsFailed", "chunks", "failures")
            },
        }
        if jstatus.get("startTime"):
            ingestion["startedAt"] = jstatus["startTime"]
        if "Failed" in jconds:
            why = jconds["Failed"].get("message") or jconds["Failed"].get("reason") or "the Job failed"
            errors = "; ".join(summary.errors)
            self.condition(
                INGESTED, False, "IngestionFailed", f"Job {job_name}: {why}" + (f" ({errors})" if errors else "")
            )
            self.event("Warning", "IngestionFailed", f"Job {job_name}: {why}")
        elif "Complete" in jconds:
            ingestion["completedAt"] = jstatus.get("completionTime")
            self.prune_earlier_ingestions(vi, uri, tag, summary.documents_failed)
            self.condition(
                INGESTED,
                True,
                "IngestionSucceeded",
                (
                    f"revision {revision}: {summary.documents_done} documents, {summary.chunks} chunks, "
                    f"{summary.documents_failed} failed"
                ),
            )
        else:
            self.busy = True
            self.condition(
                INGESTED,
                False,
                "Ingesting",
                (
                    f"Job {job_name}: {summary.reported}/{vi.spec.ingestion.parallelism} workers reported, "
                    f"{summary.chunks} chunks so far"
                ),
            )
        self.status["ingestion"] = ingestion

    def prune_earlier_ingestions(self, vi: VectorIndex, uri: str, tag: str, failed: int) -> None:
        """Once an ingestion has finished, delete the rows earlier ingestions wrote: chunks of
        documents since removed or changed, and chunks cut or embedded under another spec.
        Not while documents failed: their old chunks are all the index has of them."""
        if tag in self.state.pruned:
            return
        if failed:
            self.event(
                "Warning",
                "StaleChunksKept",
                (
                    f"{failed} document(s) failed in this ingestion; rows of earlier ingestions are kept so those "
                    "documents stay searchable"
                ),
            )
            return
        manager = CollectionManager.connect(self.target(vi, uri), CollectionSpec.from_vectorindex(vi.spec))
        manager.prune_revisions(keep=tag)
        self.state.pruned.add(tag)
        self.pruned_now = True
        self.event(
            "Normal",
            "StaleChunksPruned",
            f"deleted the rows of earlier ingestions (any metadata.revision other than {tag})",
        )

    def row_count(self, manager: CollectionManager, state: CollectionState) -> None:
        """status.rowCount: counted again only when rows_due says so (a pass over every row on
        Milvus Lite); a count this pass's collection step made is used unless rows were pruned since."""
        now = time.monotonic()
        seen = (self.generation, state.load_state, self.ingestion_seen)
        last = self.state.rows
        if state.row_count is not None and not self.pruned_now:
            last = RowCount(state.row_count, seen, now)
        elif last is None or self.pruned_now or rows_due(last, seen, now):
            last = RowCount(manager.count_rows(state.load_state), seen, now)
        self.state.rows = last
        self.status["rowCount"] = last.rows

    def summarise(self, vi: VectorIndex) -> None:
        by_type = {c["type"]: c for c in self.conditions}
        ingested = by_type.get(INGESTED, {})
        loaded = self.status.get("loadState") == "Loaded"
        failed = ingested.get("reason") == "IngestionFailed"
        # Searchable is what agents need: an older revision keeps serving while a new one ingests.
        has_rows = (self.status.get("rowCount") or 0) > 0
        ready = loaded and not failed and (ingested.get("status") == "True" or has_rows)
        if ready:
            self.condition(
                READY,
                True,
                "Searchable",
                f"collection {vi.spec.collection} is loaded with {self.status.get('rowCount', 0)} rows",
            )
        elif failed:
            self.condition(READY, False, "IngestionFailed", ingested.get("message", ""))
        elif not loaded:
            self.condition(
                READY,
                False,
                "Loading",
                f"collection {vi.spec.collection} is {self.status.get('loadState') or 'not loaded'}",
            )
        else:
            self.condition(READY, False, ingested.get("reason", "Ingesting"), ingested.get("message", ""))
        self.condition(
            PROGRESSING,
            self.busy,
            "Ingesting" if ingested.get("reason") == "Ingesting" else ("Loading" if not loaded else "Idle"),
        )
        self.status["phase"] = (
            "Ready"
            if ready
            else ("Failed" if failed else ("Ingesting" if ingested.get("reason") == "Ingesting" else "Creating"))
        )


def _termination(pod: Mapping[str, Any]) -> str:
    out = []
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        for state in ((cs.get("state") or {}).get("terminated"), (cs.get("lastState") or {}).get("terminated")):
            if state and state.get("message"):
                out.append(state["message"])
    return "\n".join(out)


# --- the controller ------------------------------------------------------------------------------


class VectorIndexController(Controller[VectorIndexState]):
    api_version, kind, name = API_VERSION, KIND, "vectorindex"

    def __init__(self, kube: Kube, events: EventRecorder | None = None, *, workers: int = 4) -> None:
        # MilvusNotReady is an expected wait (Milvus unreachable, still starting): no traceback.
        super().__init__(
            kube,
            events or EventRecorder(post_with_kube(kube)),
            workers=workers,
            resync=CONFIG.resync_seconds,
            backoff=(BACKOFF_MIN, BACKOFF_MAX),
            quiet=(MilvusNotReady,),
        )

    def new_state(self) -> VectorIndexState:
        return VectorIndexState()

    def reconcile(self, key: Key, _: Any) -> float | None:
        obj = self.fetch(key)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return None
        return VectorIndexPass(self.kube, self.events, obj, self.state(key)).run()

    def drop_collection(self, obj: dict[str, Any], elapsed: float) -> None:
        """deletionPolicy Delete: drop the collection. Raises MilvusNotReady while Milvus does not
        answer and spec.deletionTimeoutSeconds has not passed; after that, lets go with a Warning:
        a Milvus that stays unreachable never blocks deletion."""
        vi = VectorIndex.model_validate(obj)
        if vi.spec.milvus.managed is not None:
            return  # the managed Milvus goes with the VectorIndex (ownerReference, deletionPolicy Delete on it)
        p = VectorIndexPass(self.kube, self.events, obj)
        try:
            manager = CollectionManager.connect(
                p.target(vi, vi.spec.milvus.uri), CollectionSpec.from_vectorindex(vi.spec)
            )
            if manager.drop():
                p.event("Normal", "CollectionDropped", f"dropped collection {vi.spec.collection}")
        except MilvusError as e:
            if elapsed < vi.spec.deletion_timeout_seconds:
                delay = min(30.0, max(2.0, vi.spec.deletion_timeout_seconds / 10))
                raise MilvusNotReady(f"cannot drop {vi.spec.collection} yet: {e}", retry_after=delay) from e
            log.warning("%s/%s: gave up dropping collection %s: %.500s", p.ns, p.name, vi.spec.collection, e)
            p.event(
                "Warning",
                "CollectionNotDropped",
                (
                    f"gave up dropping collection {vi.spec.collection} after {int(elapsed)}s "
                    f"(spec.deletionTimeoutSeconds): {e.public}; drop it by hand"
                ),
            )
