"""The collection's decisions as a pure function (agentfleet_milvus.plan_collection): a VectorIndex's
spec and the collection as Milvus describes it in, what to do out (the VectorIndex controller's decide
step makes it; CollectionManager.carry_out does it). No Milvus here."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from agentfleet_contract.vectorindex import VectorIndex
from agentfleet_milvus import (
    DEFAULT_PARTITION,
    CollectionPlan,
    CollectionSpec,
    CollectionState,
    DescribeIndex,
    ImmutableFieldConflict,
    IndexBuild,
    Load,
    UnsupportedByServer,
    plan_collection,
)

from tests.builders import Index


def spec_of(index: Index) -> CollectionSpec:
    return CollectionSpec.from_vectorindex(VectorIndex.model_validate(index.obj()).spec)


def docs(**spec: Any) -> CollectionSpec:
    """Collection ``docs``, 384 dimensions, HNSW over COSINE, one shard, one replica (and ``spec``)."""
    return spec_of(Index("docs").spec(dimension=384).spec(**spec))


def as_built(spec: CollectionSpec, **changes: Any) -> CollectionState:
    """The collection exactly as the spec asks, loaded and indexed (and ``changes``), as describe()
    reports it from a Milvus that describes its index and replicas."""
    state = CollectionState(
        exists=True,
        row_count=10,
        load_state="Loaded",
        load_progress=100,
        shards=spec.shards,
        requested_shards=spec.shards,
        replicas=spec.replicas,
        replicas_reported=True,
        index_type=spec.index_type,
        metric=spec.metric,
        index_params=spec.build_params(),
        index_record=spec.index_record(),
        dimension=spec.dimension,
        partition_key=spec.partition_key,
        partitions=(DEFAULT_PARTITION, *spec.partitions),
        full_text_analyzer=spec.full_text_analyzer,
    )
    return replace(state, **changes)


MISSING = CollectionState(exists=False)


def test_no_collection_is_created_indexed_and_loaded() -> None:
    spec = docs(inMemoryReplicas=2)
    assert plan_collection(spec, MISSING, None) == CollectionPlan(
        create=True,
        index=IndexBuild(drop=False, release=False, sparse=False),
        load=Load(replicas=2, loaded_with=None),
    )


def test_a_new_collection_gets_the_named_partitions_and_a_full_text_one_its_sparse_index() -> None:
    named = plan_collection(docs(partitions=["alpha", "beta"]), MISSING, None)
    assert isinstance(named, CollectionPlan) and named.partitions == ("alpha", "beta")
    keyed = plan_collection(docs(partitionKey={"field": "tenant"}), MISSING, None)
    assert isinstance(keyed, CollectionPlan) and keyed.partitions == ()  # Milvus hashes the key into its own
    hybrid = plan_collection(docs(fullText={"analyzer": "english"}), MISSING, None)
    assert isinstance(hybrid, CollectionPlan) and hybrid.index == IndexBuild(drop=False, release=False, sparse=True)


def test_a_collection_as_the_spec_asks_needs_nothing() -> None:
    for spec in (docs(), docs(partitions=["alpha"]), docs(fullText={"analyzer": "english"}), docs(shards=2)):
        plan = plan_collection(spec, as_built(spec), None)
        assert isinstance(plan, CollectionPlan) and plan.nothing, (spec, plan)


def test_another_dimension_is_refused_naming_the_field_both_values_and_the_fix() -> None:
    spec = docs()
    refused = plan_collection(spec, as_built(spec, dimension=768), None)
    assert isinstance(refused, ImmutableFieldConflict)
    assert [(c.field, c.existing, c.desired) for c in refused.conflicts] == [("spec.dimension", 768, 384)]
    assert "spec.dimension is 768 in the existing collection, the spec asks for 384" in refused.public
    assert "use a new collection name (a new VectorIndex) and re-ingest" in refused.public


def test_every_immutable_field_is_refused_before_anything_else_is_planned() -> None:
    spec = docs(shards=2, partitionKey={"field": "tenant"})
    state = as_built(docs(), load_state="NotLoad", index_type=None)  # also unloaded, unindexed: no plan for those
    refused = plan_collection(spec, state, None)
    assert isinstance(refused, ImmutableFieldConflict)
    assert [c.field for c in refused.conflicts] == ["spec.shards", "spec.partitionKey.field"]


def test_a_missing_index_is_built_then_the_collection_loaded() -> None:
    spec = docs()
    state = as_built(spec, index_type=None, metric=None, index_params={}, index_record=None)
    state = replace(state, load_state="NotLoad", replicas=0)  # Milvus loads no collection without its index
    plan = plan_collection(spec, state, None)
    assert plan == CollectionPlan(index=IndexBuild(drop=False, release=False, sparse=False), load=Load(1, None))


def test_another_index_is_dropped_and_rebuilt_releasing_the_loaded_collection_first() -> None:
    spec = docs(index={"type": "IVF_FLAT", "params": {"nlist": 64}})
    plan = plan_collection(spec, as_built(docs()), None)
    assert plan == CollectionPlan(index=IndexBuild(drop=True, release=True, sparse=False), load=Load(1, None))
    hybrid = docs(fullText={"analyzer": "english"}, metric="L2")
    again = plan_collection(hybrid, as_built(docs(fullText={"analyzer": "english"})), None)
    assert again == CollectionPlan(index=IndexBuild(drop=True, release=True, sparse=True), load=Load(1, None))


def test_an_unloaded_collection_is_loaded_and_a_loading_one_left_to_finish() -> None:
    spec = docs(inMemoryReplicas=2)
    unloaded = as_built(spec, load_state="NotLoad", load_progress=0, replicas=0)
    assert plan_collection(spec, unloaded, None) == CollectionPlan(load=Load(replicas=2, loaded_with=None))
    loading = as_built(spec, load_state="Loading", load_progress=40, replicas=None)
    plan = plan_collection(spec, loading, None)
    assert isinstance(plan, CollectionPlan) and plan.nothing


def test_another_replica_number_reloads_keeping_the_old_one_to_fall_back_to() -> None:
    spec = docs(inMemoryReplicas=3)
    plan = plan_collection(spec, as_built(spec, replicas=1), None)
    assert plan == CollectionPlan(load=Load(replicas=3, loaded_with=1))


def test_missing_partitions_are_added_and_extra_ones_kept() -> None:
    spec = docs(partitions=["alpha", "beta", "gamma"])
    state = as_built(spec, partitions=(DEFAULT_PARTITION, "beta", "old"))
    assert plan_collection(spec, state, None) == CollectionPlan(partitions=("alpha", "gamma"))


def test_an_index_built_elsewhere_as_the_spec_asks_is_recorded_not_rebuilt() -> None:
    spec = docs()
    plan = plan_collection(spec, as_built(spec, index_record=None), None)
    assert plan == CollectionPlan(record_index=True)


def test_a_record_that_is_not_the_spec_s_index_asks_for_the_index_itself() -> None:
    """A pass that trusts the record (describe(index=False)) reads the index itself before rebuilding it."""
    spec = docs(index={"type": "IVF_FLAT", "params": {"nlist": 64}})
    recorded = as_built(docs(), index_described=False, index_params={})
    assert plan_collection(spec, recorded, None) == DescribeIndex()
    trusted = as_built(spec, index_described=False)
    plan = plan_collection(spec, trusted, None)
    assert isinstance(plan, CollectionPlan) and plan.nothing


def test_full_text_on_a_milvus_without_bm25_is_refused_before_anything_is_planned() -> None:
    refused = plan_collection(docs(fullText={"analyzer": "english"}), MISSING, (2, 4, 9))
    assert isinstance(refused, UnsupportedByServer) and "spec.fullText needs Milvus 2.5" in refused.public
    plan = plan_collection(docs(), MISSING, (2, 3, 5))
    assert isinstance(plan, CollectionPlan) and plan.create


def test_the_plan_is_a_value_of_its_inputs() -> None:
    spec = docs(partitions=["alpha"], inMemoryReplicas=2)
    state = as_built(spec, replicas=1, partitions=(DEFAULT_PARTITION,))
    before = replace(state)
    assert plan_collection(spec, state, None) == plan_collection(spec, state, None)
    assert state == before
