"""The typed records a VectorIndex pass hands from step to step (``Observed`` -> ``Plan`` ->
``Acted``; ``ReadCollection``: decide's ask for the collection's state from Milvus), what the
controller remembers between passes (``VectorIndexState``), and the pure timing rules of what a
pass costs (rows_due, index_check_due, next_busy_delay)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agentfleet_contract.vectorindex import VectorIndex
from agentfleet_milvus import (
    CollectionPlan,
    CollectionState,
    MilvusError,
    MilvusTarget,
    MilvusUnavailable,
    Reconciled,
)

from agentfleet.reconcile.shape import Wants

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
# A refused source claim is checked again this often (labelling a claim wakes nothing).
CLAIM_RECHECK_SECONDS = 30.0

# What status and Events say when Milvus cannot be reached, whatever the cause (the cause goes to
# the operator's log).
MILVUS_UNREACHABLE = MilvusUnavailable.default_public

# A condition as the steps name it: (type, status, reason, message).
Condition = tuple[str, bool, str, str]
# An Event as the steps name it: (type, reason, message).
Post = tuple[str, str, str]


class SecretRefused(MilvusUnavailable):
    """spec.milvus.credentials names a Secret the operator may not use (render.common.secret_problem)."""


class MilvusNotReady(Exception):
    """The pass could not finish (Milvus unreachable, a Milvus still starting): try again later."""

    def __init__(self, message: str, retry_after: float = 10.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


# --- between passes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowCount:
    rows: int
    seen: object  # what the count depends on, as observed when counting (rows_due)
    at: float  # time.monotonic() of the count


@dataclass
class VectorIndexState:
    """What the controller remembers of one VectorIndex between passes (safe to lose)."""

    pruned: set[str] = field(default_factory=set)  # row tags whose earlier ingestions' rows were deleted
    rows: RowCount | None = None  # the last row count
    index_checked_at: float | None = None  # time.monotonic() when the index was last described
    busy_delay: float | None = None  # the wait the last busy pass asked for; None when not busy
    busy_seen: str | None = None  # what that pass observed (its status, normalised)


def rows_due(last: RowCount | None, seen: object, now: float, max_age: float = DETAIL_MAX_AGE_SECONDS) -> bool:
    """Whether to count the collection's rows again: never counted, what the count depends on
    (spec generation, load state, the ingestion's progress) changed, or the count is max_age old."""
    return last is None or last.seen != seen or now - last.at >= max_age


def index_check_due(last: float | None, now: float, max_age: float = DETAIL_MAX_AGE_SECONDS) -> bool:
    """Whether to describe the index itself instead of trusting our record of it (first pass of
    this process, or max_age since the last time). A spec that asks for another index than the
    record is described anyway (agentfleet_milvus.plan_collection asks for it)."""
    return last is None or now - last >= max_age


def next_busy_delay(
    previous: float | None, changed: bool, base: float = BUSY_RESYNC_SECONDS, cap: float = BUSY_RESYNC_MAX_SECONDS
) -> float:
    """Seconds until the next pass while something is under way: ``base`` after a pass that saw
    something change (or the first busy pass), else twice the previous wait, at most ``cap``."""
    if changed or previous is None:
        return base
    return min(cap, previous * 2)


# --- observe ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Credentials:
    """spec.milvus.credentials, read from a Secret that carries the consent label."""

    user: str = ""
    password: str = field(default="", repr=False)

    def target(self, uri: str, database: str) -> MilvusTarget:
        return MilvusTarget(uri=uri, database=database, user=self.user, password=self.password)


@dataclass(frozen=True)
class JobSeen:
    """The ingestion Job of the source revision the spec asks for, and what is around it."""

    name: str
    live: Mapping[str, Any] | None  # None: not created yet
    others: tuple[str, ...]  # earlier ingestion Jobs of this VectorIndex, to delete
    terminations: tuple[str, ...]  # its pods' termination messages (agentfleet_contract.ingest_progress)


@dataclass(frozen=True)
class Memory:
    """What the controller remembered when the pass began (a copy: decide reads it, act updates the state)."""

    pruned: frozenset[str]
    rows: RowCount | None
    index_checked_at: float | None


@dataclass(frozen=True)
class CollectionSeen:
    """The collection as read from Milvus (observe_more), or the Milvus error that stopped the read."""

    state: CollectionState | None  # None: the read failed
    version: tuple[int, int, int] | None = None  # the server's; None: Milvus Lite or unknown
    failure: MilvusError | None = None  # reaching or reading Milvus failed (reported as the pass's failure)


@dataclass(frozen=True)
class ReadCollection(Wants):
    """Decide's ask: connect to Milvus and describe the collection (``rows`` and ``index`` as
    CollectionManager.describe takes them), then decide again."""

    rows: bool
    index: bool


@dataclass(frozen=True)
class Observed:
    ns: str
    name: str
    generation: int
    vi: VectorIndex
    status_in: Mapping[str, Any]
    conditions_in: tuple[Mapping[str, Any], ...]
    now: float  # time.monotonic()
    image: str  # the ingestion image when the spec names none (the operator's runtime image)
    milvus_live: Mapping[str, Any] | None  # the managed Milvus object; None: external, or not there yet
    milvus_kind_missing: bool  # managed, and the milvus.io Milvus kind is not served
    endpoint: str | None  # where Milvus answers; None while a managed one is not ready
    endpoint_why: str  # why there is none, or what serves it
    credentials: Credentials
    credentials_problem: str | None  # why the credentials Secret may not be used (its message)
    source_seen: str | None  # a fingerprint of a ConfigMap source's data, "missing", or None
    claim: Mapping[str, Any] | None  # the PersistentVolumeClaim a volume source names; None: none, or not found
    job: JobSeen | None  # None: no source, or no endpoint yet
    memory: Memory
    collection: CollectionSeen | None = None  # None: not read (decide asks with ReadCollection once it would use it)


# --- decide ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stop:
    """The pass ends here and reports; MilvusNotReady brings the next one with backoff."""

    phase: str
    conditions: tuple[Condition, ...]
    post: Post
    retry_after: float = 10.0


@dataclass(frozen=True)
class IngestionPlan:
    """The ingestion of the spec's source revision: what to create and delete, how it stands."""

    revision: str
    job_name: str
    tag: str  # the row tag of this ingestion's rows (render.row_tag)
    create: tuple[dict[str, Any], ...]  # the ConfigMap and Job to create (a Job's template is immutable)
    delete: tuple[str, ...]  # earlier Jobs
    status: Mapping[str, Any]  # status.ingestion
    condition: Condition  # Ingested
    post: Post | None  # IngestionFailed
    busy: bool
    prune: bool  # the Job completed without failed documents: delete the rows of earlier tags, once per tag
    kept: int  # documents that failed in a completed ingestion whose earlier rows are kept (0: none)
    seen: tuple[object, ...]  # the ingestion's progress as the pass saw it (rows_due)


@dataclass(frozen=True)
class Plan:
    milvus: dict[str, Any] | None  # the managed Milvus object to apply
    milvus_condition: Condition | None  # MilvusReady; None while its kind is missing
    stop: Stop | None  # before the collection: the Milvus kind missing, credentials refused
    endpoint: str | None
    waiting: tuple[Condition, ...]  # while the managed Milvus is not ready
    index_detail: bool  # describe the index rather than trusting our record of it
    ingestion: IngestionPlan | None  # None: no source
    collection: CollectionPlan | None = None  # the collection's Milvus calls; None: Milvus is not reached
    # Why the collection is not planned: Milvus unreachable or refusing (the read failed), a spec
    # this server cannot hold (UnsupportedByServer), or one the collection cannot become
    # (ImmutableFieldConflict). Nothing is changed in Milvus.
    collection_failure: MilvusError | None = None


# --- act ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Acted:
    kind_missing: bool = False  # applying the managed Milvus found no Milvus kind
    ensured: Reconciled | None = None  # the collection as CollectionManager.carry_out left it
    conflict: str | None = None  # the spec asks for what the collection cannot become; nothing changed
    job_created: bool = False
    ingested: bool = False  # the ingestion step ran to its end (Job, old Jobs, pruning)
    pruned: bool = False  # the rows of earlier ingestions were deleted in this pass
    rows: RowCount | None = None
    failure: Stop | None = None  # a Milvus call failed (status.failure_stop)
