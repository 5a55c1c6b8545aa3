"""What to do to a collection, decided without I/O: a CollectionSpec and the CollectionState read from
Milvus in, a CollectionPlan (or a refusal, or the one more read it needs) out.

The VectorIndex controller calls ``plan_collection`` in its decide step and carries the plan out in
its act step (CollectionManager.carry_out); CollectionManager.ensure runs the same three (describe,
plan_collection, carry_out) for callers without steps of their own (tests, benchmarks, the demo).
"""

from __future__ import annotations

from dataclasses import dataclass

from agentfleet_milvus.errors import ImmutableFieldConflict, UnsupportedByServer
from agentfleet_milvus.schema import (
    CollectionSpec,
    CollectionState,
    immutable_conflicts,
    index_up_to_date,
    unsupported_by,
)

# The partition Milvus creates with every collection (named partitions are added beside it).
DEFAULT_PARTITION = "_default"


@dataclass(frozen=True)
class IndexBuild:
    """Build the spec's dense index (index_type, metric, build parameters) over the rows there are,
    and record it in the collection's properties."""

    drop: bool  # another index is there: drop it first (rows are kept)
    release: bool  # the collection is loaded or loading: Milvus drops no index of a loaded collection
    # spec.fullText: the BM25 field's SPARSE_INVERTED_INDEX is built too where it is missing once the
    # dense one is dropped (Milvus Lite drops every index of the collection with it, Milvus only the
    # named one: act looks), since a collection loads only once every vector field has an index.
    sparse: bool


@dataclass(frozen=True)
class Load:
    """Load the collection with ``replicas`` in-memory replicas."""

    replicas: int
    # Loaded now with this many (released first, and loaded again with them if Milvus refuses the
    # new number); None: not loaded.
    loaded_with: int | None


@dataclass(frozen=True)
class CollectionPlan:
    """The Milvus calls that make the collection match the spec, in the order act makes them.
    Nothing set (``nothing``): the collection already matches."""

    create: bool = False  # create the collection with the spec's schema (it does not exist)
    partitions: tuple[str, ...] = ()  # named partitions to add (extra ones are kept: dropping loses rows)
    record_index: bool = False  # the index is the spec's but unrecorded: record it (later passes trust the record)
    index: IndexBuild | None = None
    load: Load | None = None

    @property
    def nothing(self) -> bool:
        return self == CollectionPlan()


@dataclass(frozen=True)
class DescribeIndex:
    """Our record of the index is not what the spec asks: describe the index itself (rows not
    needed), then plan again. Only asked of a state read with ``index=False``."""


# What plan_collection may answer: a plan, a refusal (raise it: nothing was changed), or a read.
Decision = CollectionPlan | ImmutableFieldConflict | UnsupportedByServer | DescribeIndex


def new_collection(spec: CollectionSpec) -> CollectionState:
    """The state Milvus gives a collection it has just created from ``spec``: no index, not loaded,
    only the default partition (with a partition key Milvus lists none)."""
    return CollectionState(
        exists=True,
        load_state="NotLoad",
        shards=spec.shards,
        requested_shards=spec.shards,
        dimension=spec.dimension,
        partition_key=spec.partition_key,
        partitions=() if spec.partition_key else (DEFAULT_PARTITION,),
        full_text_analyzer=spec.full_text_analyzer,
    )


def plan_collection(spec: CollectionSpec, state: CollectionState, version: tuple[int, int, int] | None) -> Decision:
    """What to do to make the collection ``state`` describes match ``spec`` on a Milvus of
    ``version`` (None: Milvus Lite, or unknown). Pure.

    Refused, before anything is created or changed: a spec this server cannot hold
    (UnsupportedByServer), and an existing collection whose dimension, shards, partition key or
    full-text field differ from the spec's (ImmutableFieldConflict, each field named with both values
    and the fix). Else the collection is created if missing; named partitions the spec lists are
    added; the index is built, or dropped and rebuilt over the same rows when its type, parameters or
    metric differ; the collection is loaded, or released and loaded again when its replica number
    differs (never while it is still loading)."""
    why = unsupported_by(spec, version)
    if why is not None:
        return UnsupportedByServer(why)
    create = not state.exists
    if create:
        state = new_collection(spec)
    else:
        conflicts = immutable_conflicts(spec, state)
        if conflicts:
            return ImmutableFieldConflict(spec.name, conflicts)
        if not state.index_described and not index_up_to_date(spec, state):
            return DescribeIndex()
    partitions: tuple[str, ...] = ()
    if spec.partition_key is None:
        partitions = tuple(p for p in spec.partitions if p not in state.partitions)
    index = None
    record = False
    if index_up_to_date(spec, state):
        # Built before the record existed (or by hand, as the spec asks): record it, so later passes
        # can trust the record instead of describing the index.
        record = state.index_record is None and state.index_described
    else:
        index = IndexBuild(
            drop=state.index_type is not None,
            release=state.index_type is not None and state.load_state in ("Loaded", "Loading"),
            sparse=spec.full_text_analyzer is not None,
        )
    load = None
    if index is not None:
        load = Load(spec.replicas, None)  # built on a collection that is (now) released
    elif state.load_state == "Loading":
        pass  # a load under way finishes first: the next pass looks again
    elif state.load_state != "Loaded" or state.replicas != spec.replicas:
        load = Load(spec.replicas, state.replicas if state.load_state == "Loaded" else None)
    return CollectionPlan(create=create, partitions=partitions, record_index=record, index=index, load=load)


def notes(spec: CollectionSpec, state: CollectionState) -> tuple[str, ...]:
    """What a user should know of the collection as it is (MilvusNote Events): Milvus Lite's shards
    and replicas are not the ones requested."""
    out = []
    if state.shards is not None and state.shards != spec.shards:
        out.append(f"Milvus reports {state.shards} shard(s) for {spec.shards} requested (Milvus Lite keeps one shard)")
    if not state.replicas_reported and state.load_state == "Loaded":
        out.append(
            "this Milvus does not describe replicas; inMemoryReplicas shows the replica number requested at load"
        )
    return tuple(out)
