"""One reconcile of one VectorIndex, level-based and idempotent, in the framework's four steps
(agentfleet.reconcile.shape), each handing the next a frozen typed record (records.py):

    observe   the object and its spec (an invalid one is refused), the managed Milvus object, the
              credentials Secret, the source (a ConfigMap's data, a claim), the ingestion Job of
              the source revision, earlier Jobs, its pods' termination records: ``Observed``;
              once decide asks (``ReadCollection``), the collection as Milvus describes it
    decide    pure (deciding.py): a claim without consent is refused; the Milvus to apply, what
              stops the pass, whether to describe the index, the collection's Milvus calls
              (agentfleet_milvus.plan_collection; an immutable field's change is refused), the
              ingestion: ``Plan``
    act       applies the managed Milvus; then, through agentfleet_milvus, carries out the
              collection's plan, creates the ingestion Job, deletes earlier ones, prunes the rows of
              earlier ingestions, counts rows when due: ``Acted``
    write     Events, then status and conditions (status.compose, pure); the wait until the next
              pass, or MilvusNotReady for the work queue's backoff

What a pass costs stays bounded however large the collection and however long a Job runs: the
observations that cost a pass over every row on some servers (counting rows, describing the index:
Milvus Lite counts every live row to answer either) are made when something they depend on changed,
and at least every DETAIL_MAX_AGE_SECONDS, not on every pass; and while something is under way, the
next pass comes BUSY_RESYNC_SECONDS later, twice as late after each pass that saw nothing change, at
most BUSY_RESYNC_MAX_SECONDS (a Job that never finishes must not keep Milvus busy).
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, ClassVar

from agentfleet_contract.common import API_VERSION
from agentfleet_contract.conditions import READY, set_condition
from agentfleet_contract.vectorindex import VectorIndex
from agentfleet_milvus import (
    CollectionManager,
    CollectionSpec,
    CollectionState,
    ImmutableFieldConflict,
    MilvusError,
    MilvusUnavailable,
    Reconciled,
    UnsupportedByServer,
)
from kubernetes.dynamic.exceptions import NotFoundError, ResourceNotFoundError
from pydantic import ValidationError

from agentfleet.controllers.settings import CONFIG
from agentfleet.controllers.vectorindex.deciding import decide, endpoint, ingestion_objects
from agentfleet.controllers.vectorindex.records import (
    Acted,
    CollectionSeen,
    Credentials,
    JobSeen,
    Memory,
    MilvusNotReady,
    Observed,
    Plan,
    ReadCollection,
    RowCount,
    VectorIndexState,
    next_busy_delay,
    rows_due,
)
from agentfleet.controllers.vectorindex.services import Events, PassKube, PassServices
from agentfleet.controllers.vectorindex.status import Report, compose, failure_stop
from agentfleet.reconcile.errors import describe_validation_error
from agentfleet.reconcile.shape import Refused, Steps, Wants
from agentfleet.reconcile.status import normalize
from agentfleet.render import vectorindex as render
from agentfleet.render.common import secret_problem

log = logging.getLogger("agentfleet.vectorindex")

# The phase a refusal leaves: a spec that must change, or a claim waiting for its owner's label.
REFUSAL_PHASE = {"InvalidSpec": "Failed"}


def _b64(data: Mapping[str, str] | None, key: str) -> str:
    raw = (data or {}).get(key)
    return base64.b64decode(raw).decode() if raw else ""


def read_credentials(kube: PassKube, vi: VectorIndex, ns: str) -> tuple[Credentials, str | None]:
    """spec.milvus.credentials from their Secret, or why the Secret may not be used
    (render.common.secret_problem: it must exist, hold the keys and carry the consent label)."""
    creds = vi.spec.milvus.credentials
    if creds is None:
        return Credentials(), None
    secret = kube.get("v1", "Secret", creds.secret_name, ns)
    for key in (creds.username_key, creds.password_key):
        why = secret_problem(secret, "spec.milvus.credentials", creds.secret_name, key, ns)
        if why is not None:
            return Credentials(), why[1]
    data = (secret or {}).get("data")
    return Credentials(_b64(data, creds.username_key), _b64(data, creds.password_key)), None


def _termination(pod: Mapping[str, Any]) -> str:
    out = []
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        for state in ((cs.get("state") or {}).get("terminated"), (cs.get("lastState") or {}).get("terminated")):
            if state and state.get("message"):
                out.append(state["message"])
    return "\n".join(out)


@dataclass
class _Acting:
    """What act has done so far (frozen into ``Acted``; a failing Milvus call ends it early)."""

    ensured: Reconciled | None = None
    job_created: bool = False
    ingested: bool = False
    pruned: bool = False
    rows: RowCount | None = None

    def done(self, failure: MilvusError | None = None, endpoint: str | None = None) -> Acted:
        stop = failure_stop(failure, endpoint) if failure is not None else None
        return Acted(
            ensured=self.ensured,
            job_created=self.job_created,
            ingested=self.ingested,
            pruned=self.pruned,
            rows=self.rows,
            failure=stop,
        )


class VectorIndexPass(Steps[Observed, Plan, Acted]):
    services: ClassVar[type] = PassServices

    def __init__(
        self,
        kube: PassKube,
        events: Events,
        obj: dict[str, Any],
        state: VectorIndexState | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kube = kube
        self.events = events
        self.clock = clock
        self.state = state or VectorIndexState()
        self.obj = obj
        self.manager: CollectionManager | None = None  # the Milvus connection, once the collection is read
        meta = obj["metadata"]
        self.ns, self.name = meta["namespace"], meta["name"]
        self.generation = int(meta.get("generation") or 0)

    # --- helpers the steps share ---

    def event(self, type_: str, reason: str, message: str) -> None:
        self.events.event(self.obj, type_, reason, message)

    def warn(self, reason: str, message: str) -> None:
        self.event("Warning", reason, message)

    def write_status(self, status: dict[str, Any], conditions: list[dict[str, Any]]) -> None:
        status["conditions"] = conditions
        status["observedGeneration"] = self.generation
        try:
            self.kube.merge_patch_status(API_VERSION, "VectorIndex", self.name, self.ns, status)
        except NotFoundError:
            pass  # deleted during the pass

    def write_refusal(self, refused: Refused) -> None:
        """Ready False with the refusal, and the phase; nothing else is created or changed."""
        conditions = list((self.obj.get("status") or {}).get("conditions") or [])
        conditions = set_condition(conditions, READY, False, refused.reason, refused.message, self.generation)
        self.write_status({"phase": REFUSAL_PHASE.get(refused.reason, "Pending")}, conditions)

    # --- observe ---

    def parse(self) -> VectorIndex:
        """The spec as the models read it; the schema refuses what it can, this catches what only
        the operator's models know (or a CRD older than the operator)."""
        try:
            return VectorIndex.model_validate(self.obj)
        except ValidationError as e:
            raise Refused("InvalidSpec", describe_validation_error(e), "spec") from e

    def observe(self) -> Observed:
        vi = self.parse()
        spec = vi.spec
        live, kind_missing = None, False
        if spec.milvus.managed is not None:
            wanted = render.render_milvus(vi)
            try:
                live = self.kube.get(wanted["apiVersion"], wanted["kind"], wanted["metadata"]["name"], self.ns)
            except ResourceNotFoundError:
                kind_missing = True
        uri, why = endpoint(spec.milvus.managed is not None, spec.milvus.uri, live)
        credentials, problem = read_credentials(self.kube, vi, self.ns)
        pvc = spec.source.persistent_volume_claim if spec.source is not None else None
        claim = self.kube.get("v1", "PersistentVolumeClaim", pvc.claim_name, self.ns) if pvc is not None else None
        source_seen = self.observed_source(vi)
        status_in = dict(self.obj.get("status") or {})
        image = CONFIG.runtime_image
        job = None
        if spec.source is not None and uri is not None and problem is None:
            _, objs = ingestion_objects(vi, image, source_seen, uri)
            job = self.observe_job(objs[-1]["metadata"]["name"])
        return Observed(
            ns=self.ns,
            name=self.name,
            generation=self.generation,
            vi=vi,
            status_in=status_in,
            conditions_in=tuple(status_in.get("conditions") or ()),
            now=self.clock(),
            image=image,
            milvus_live=live,
            milvus_kind_missing=kind_missing,
            endpoint=uri,
            endpoint_why=why,
            credentials=credentials,
            credentials_problem=problem,
            source_seen=source_seen,
            claim=claim,
            job=job,
            memory=Memory(frozenset(self.state.pruned), self.state.rows, self.state.index_checked_at),
        )

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

    def observe_job(self, job_name: str) -> JobSeen:
        live = self.kube.get("batch/v1", "Job", job_name, self.ns)
        selector = ",".join(f"{k}={v}" for k, v in render.ingestion_selector(self.name).items())
        others = [j["metadata"]["name"] for j in self.kube.list("batch/v1", "Job", self.ns, selector)]
        pods = self.kube.list("v1", "Pod", self.ns, f"job-name={job_name}") if live is not None else []
        return JobSeen(
            name=job_name,
            live=live,
            others=tuple(n for n in others if n != job_name),
            terminations=tuple(_termination(p) for p in pods),
        )

    def observe_more(self, observed: Observed, wants: Wants) -> Observed:
        if isinstance(wants, ReadCollection):
            return replace(observed, collection=self.read_collection(observed, wants))
        return super().observe_more(observed, wants)

    def read_collection(self, observed: Observed, wants: ReadCollection) -> CollectionSeen:
        """The collection as Milvus describes it (connecting once per pass), or why it could not be read."""
        spec = observed.vi.spec
        if observed.endpoint is None:
            raise ValueError("the collection is read only once Milvus has an endpoint")
        try:
            if self.manager is None:
                target = observed.credentials.target(observed.endpoint, spec.milvus.database)
                self.manager = CollectionManager.connect(target, CollectionSpec.from_vectorindex(spec))
            state = self.manager.describe(rows=wants.rows, index=wants.index)
        except MilvusError as e:
            return CollectionSeen(None, failure=e)
        return CollectionSeen(state, self.manager.version)

    # --- decide ---

    def decide(self, observed: Observed) -> Plan | Refused | ReadCollection:
        return decide(observed)

    # --- act ---

    def act(self, observed: Observed, plan: Plan) -> Acted:
        if plan.milvus is not None:
            try:
                self.kube.apply(plan.milvus)
            except ResourceNotFoundError:
                return Acted(kind_missing=True)
        if plan.endpoint is None or plan.stop is not None:
            return Acted()
        work = _Acting()
        if isinstance(plan.collection_failure, ImmutableFieldConflict):
            return Acted(conflict=str(plan.collection_failure))  # nothing is changed in Milvus
        if plan.collection_failure is not None:
            return self.failed(plan, work, plan.collection_failure)
        manager, seen = self.manager, observed.collection
        if manager is None or plan.collection is None or seen is None or seen.state is None:
            raise ValueError("a plan that reaches Milvus comes with the collection read")
        try:
            work.ensured = manager.carry_out(plan.collection, seen.state, wait_loaded=False, detail=plan.index_detail)
            if plan.index_detail:
                self.state.index_checked_at = observed.now
            self.ingest(plan, manager, work)
            work.ingested = True
            work.rows = self.count_rows(observed, plan, manager, work.ensured.state, work.pruned)
        except MilvusError as e:
            return self.failed(plan, work, e)
        return work.done()

    def failed(self, plan: Plan, work: _Acting, e: MilvusError) -> Acted:
        """A Milvus call (or the read before the plan) failed: the cause to the log, our words to status."""
        if isinstance(e, MilvusUnavailable):
            log.info("%s/%s: Milvus at %s unavailable: %.300s", self.ns, self.name, plan.endpoint, e)
        elif not isinstance(e, UnsupportedByServer):
            log.info("%s/%s: Milvus at %s refused: %.500s", self.ns, self.name, plan.endpoint, e)
        return work.done(e, plan.endpoint)

    def ingest(self, plan: Plan, manager: CollectionManager, work: _Acting) -> None:
        """The ingestion Job (created once, never patched: its pod template is immutable), earlier
        Jobs deleted, and once it completed, the rows of earlier ingestions pruned (once per tag)."""
        ing = plan.ingestion
        if ing is None:
            return
        for o in ing.create:
            self.kube.apply(o)
        work.job_created = bool(ing.create)
        for old in ing.delete:
            self.kube.delete("batch/v1", "Job", old, self.ns)
        if ing.prune:
            manager.prune_revisions(keep=ing.tag)
            self.state.pruned.add(ing.tag)
            work.pruned = True

    def count_rows(
        self, obs: Observed, plan: Plan, manager: CollectionManager, state: CollectionState, pruned: bool
    ) -> RowCount:
        """status.rowCount: counted again only when rows_due says so (a pass over every row on
        Milvus Lite); a count the collection step made is used unless rows were pruned since."""
        seen = (obs.generation, state.load_state, plan.ingestion.seen if plan.ingestion else None)
        last = self.state.rows
        if state.row_count is not None and not pruned:
            last = RowCount(state.row_count, seen, obs.now)
        elif last is None or pruned or rows_due(last, seen, obs.now):
            last = RowCount(manager.count_rows(state.load_state), seen, obs.now)
        self.state.rows = last
        return last

    # --- write ---

    def write(self, observed: Observed, plan: Plan, acted: Acted) -> float | None:
        """Events, then the status; the wait until the next pass (None: only on change or
        resync), or MilvusNotReady when the pass stopped."""
        r = compose(observed, plan, acted)
        for post in r.posts:
            self.event(*post)
        self.write_status(r.status, r.conditions)
        if r.stop is not None:
            raise MilvusNotReady(r.stop.post[2], retry_after=r.stop.retry_after)
        return self.busy_wait(r)

    def busy_wait(self, r: Report) -> float | None:
        """None when nothing is under way (events and the resync bring the next pass), else
        next_busy_delay, judged by whether this pass's status differs from the last busy pass's."""
        if r.ending != "busy":
            self.state.busy_delay = self.state.busy_seen = None
            return None
        seen = json.dumps(normalize(r.status), sort_keys=True, default=str)
        self.state.busy_delay = next_busy_delay(self.state.busy_delay, seen != self.state.busy_seen)
        self.state.busy_seen = seen
        return self.state.busy_delay
