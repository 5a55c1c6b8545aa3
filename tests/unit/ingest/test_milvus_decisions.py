"""The pure decisions of the collection manager and retrieval: conflicts, index drift, errors, scores."""

from __future__ import annotations

import grpc
import pytest
from agentfleet_contract.vectorindex import VectorIndex
from agentfleet_milvus import (
    CollectionSpec,
    CollectionState,
    ImmutableFieldConflict,
    MilvusRequestError,
    MilvusUnavailable,
    immutable_conflicts,
    index_up_to_date,
    translate,
    with_retries,
)
from pymilvus.exceptions import MilvusException

from agentfleet_runtime.tools.retriever import to_passages

SPEC = CollectionSpec(name="kb", dimension=384, index_type="HNSW", index_params={"M": 16}, shards=2)


def test_spec_from_a_vectorindex() -> None:
    v = VectorIndex.model_validate(
        {
            "metadata": {"name": "kb"},
            "spec": {
                "milvus": {"uri": "http://m:19530"},
                "collection": "kb",
                "index": {"type": "IVF_FLAT", "params": {"nlist": 64}},
                "shards": 4,
                "partitionKey": {"field": "tenant", "numPartitions": 32},
                "inMemoryReplicas": 2,
            },
        }
    )
    s = CollectionSpec.from_vectorindex(v.spec)
    assert (s.name, s.dimension, s.metric, s.index_type, dict(s.index_params)) == (
        "kb",
        384,
        "COSINE",
        "IVF_FLAT",
        {"nlist": 64},
    )
    assert (s.shards, s.partition_key, s.num_partitions, s.replicas, s.partitions) == (4, "tenant", 32, 2, ())


def test_immutable_conflicts_name_each_field() -> None:
    same = CollectionState(exists=True, dimension=384, shards=1, requested_shards=2)
    assert immutable_conflicts(SPEC, same) == []  # recorded request wins over Milvus Lite's single shard
    other = CollectionState(exists=True, dimension=768, shards=4, partition_key="tenant")
    fields = [c.field for c in immutable_conflicts(SPEC, other)]
    assert fields == ["spec.dimension", "spec.shards", "spec.partitionKey.field"]
    msg = str(ImmutableFieldConflict("kb", immutable_conflicts(SPEC, other)))
    assert "spec.dimension is 768 in the existing collection, the spec asks for 384" in msg


def test_index_drift() -> None:
    ok = CollectionState(
        exists=True, index_type="HNSW", metric="COSINE", index_params={"M": "16"}, index_record=SPEC.index_record()
    )
    assert index_up_to_date(SPEC, ok)
    assert not index_up_to_date(SPEC, CollectionState(exists=True))  # no index yet
    assert not index_up_to_date(SPEC, CollectionState(exists=True, index_type="IVF_FLAT", metric="COSINE"))
    assert not index_up_to_date(SPEC, CollectionState(exists=True, index_type="HNSW", metric="L2"))
    assert not index_up_to_date(
        SPEC, CollectionState(exists=True, index_type="HNSW", metric="COSINE", index_params={"M": "8"})
    )
    # A server that echoes no parameters: our record decides.
    stale = CollectionState(exists=True, index_type="HNSW", metric="COSINE", index_record='{"old": 1}')
    assert not index_up_to_date(SPEC, stale)
    foreign = CollectionState(exists=True, index_type="HNSW", metric="COSINE")
    assert index_up_to_date(SPEC, foreign)  # created elsewhere, same type and metric: left alone


class _Rpc(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "x"


def test_errors_are_translated_by_cause() -> None:
    assert isinstance(translate(MilvusException(code=2, message="Fail connecting to server")), MilvusUnavailable)
    assert isinstance(translate(_Rpc(grpc.StatusCode.UNAVAILABLE)), MilvusUnavailable)
    assert isinstance(translate(_Rpc(grpc.StatusCode.DEADLINE_EXCEEDED)), MilvusUnavailable)
    assert isinstance(translate(ConnectionRefusedError()), MilvusUnavailable)
    refused = translate(MilvusException(code=1100, message="invalid index params"))
    assert isinstance(refused, MilvusRequestError) and refused.code == 1100 and not refused.retryable
    assert isinstance(translate(_Rpc(grpc.StatusCode.UNIMPLEMENTED)), MilvusRequestError)


def test_retries_back_off_then_give_up() -> None:
    sleeps: list[float] = []
    calls = {"n": 0}

    def flaky() -> str:
        calls["n"] += 1
        if calls["n"] < 3:
            raise ConnectionResetError("reset")
        return "ok"

    assert with_retries(flaky, sleep=sleeps.append) == "ok" and sleeps == [0.5, 1.0]
    with pytest.raises(MilvusUnavailable):
        with_retries(lambda: (_ for _ in ()).throw(TimeoutError()), attempts=3, sleep=sleeps.append)
    with pytest.raises(MilvusRequestError):  # not retried
        with_retries(lambda: (_ for _ in ()).throw(MilvusException(code=5, message="bad filter")), sleep=sleeps.append)


def test_passages_carry_scores_where_higher_is_better() -> None:
    hits = [
        {"id": "a", "distance": 0.2, "entity": {"text": "A", "source": "a.md", "metadata": {"chunk": 0}}},
        {"id": "b", "distance": 0.9, "entity": {"text": "B", "source": "b.md", "metadata": None}},
    ]
    cos = to_passages(hits, "COSINE")
    assert [p.id for p in cos] == ["b", "a"] and cos[0].score == 0.9 and cos[1].metadata == {"chunk": 0}
    l2 = to_passages(hits, "L2")
    assert [p.id for p in l2] == ["a", "b"] and l2[0].score == -0.2
