"""The VectorIndex collection against a real Milvus 2.3.5 standalone server (issue 56's defects 4-7,
shards and replicas read back, an index type change over existing rows).

Each test names the defect it pins; each failed on the code before its fix (see the closing note of
the branch: revert the fix, run, restore)."""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import pytest
from agentfleet_milvus import (
    CollectionManager,
    CollectionSpec,
    MilvusSink,
    MilvusTarget,
    UnsupportedByServer,
)

from tests.integration.milvus_server.conftest import ApiStandIn, run_pass, vectorindex

pytestmark = pytest.mark.integration
DIM = 8


def name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


def rows(n: int, start: int = 0) -> list[dict[str, Any]]:
    rnd = random.Random(start)
    return [
        {
            "id": f"c{i:06d}",
            "text": f"chunk {i}",
            "source": f"doc{i % 7}",
            "metadata": {"chunk": i, "revision": "r1"},
            "vector": [rnd.random() for _ in range(DIM)],
        }
        for i in range(start, start + n)
    ]


def manager(uri: str, **spec: Any) -> CollectionManager:
    return CollectionManager.connect(MilvusTarget(uri=uri, timeout=30), CollectionSpec(dimension=DIM, **spec))


def wait_loaded(m: CollectionManager, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while m.describe(rows=False, index=False).load_state != "Loaded":
        assert time.monotonic() < deadline, "not loaded in time"
        time.sleep(0.5)


def count(m: CollectionManager) -> int:
    res = m.client.query(m.spec.name, filter="", output_fields=["count(*)"], consistency_level="Strong")
    return int(res[0]["count(*)"])


# --- defect 4: explicit index parameters by default -----------------------------------------------


@pytest.mark.parametrize("index_type", ["HNSW", "IVF_FLAT", "IVF_SQ8", "IVF_PQ"])
def test_a_default_index_of_each_type_is_built_and_loaded(milvus_uri: str, index_type: str) -> None:
    # Milvus 2.3 has no build defaults: HNSW without M/efConstruction was refused
    # ("efConstruction out of range"), IVF without nlist, IVF_PQ without m; never loaded.
    m = manager(milvus_uri, name=name("dflt"), index_type=index_type)
    done = m.ensure(wait_loaded=True)
    assert done.state.index_type == index_type and done.state.load_state == "Loaded"
    built = m.spec.build_params()
    assert {k: int(v) for k, v in done.state.index_params.items() if k in built} == built
    assert m.spec.index_params == {}  # the spec stays as written
    m.drop()


# --- defect 5: a replica number the server cannot hold ---------------------------------------------


def test_a_refused_replica_change_leaves_the_collection_loaded_as_it_was(milvus_uri: str) -> None:
    n = name("repl")
    m = manager(milvus_uri, name=n)
    m.ensure(wait_loaded=True)
    MilvusSink(m.client, n).upsert(rows(50))
    two = manager(milvus_uri, name=n, replicas=2)  # one query node: "nodes not enough"
    done = two.ensure(wait_loaded=True)
    assert done.replicas_refused is not None and "Lower spec.inMemoryReplicas" in done.replicas_refused
    assert "nodes not enough" not in done.replicas_refused  # our words, not the server's
    state = two.describe()
    assert state.load_state == "Loaded" and state.replicas == 1 and state.replicas_reported
    hits = two.client.search(n, data=[rows(1)[0]["vector"]], limit=3, consistency_level="Strong")
    assert len(hits[0]) == 3  # still serving
    m.drop()


def test_the_controller_reports_the_refused_replicas_and_keeps_the_index_ready(milvus_uri: str) -> None:
    n = name("replc")
    api = ApiStandIn()
    assert run_pass(api, vectorindex(milvus_uri, n)) is None  # creates it and starts loading it
    wait_loaded(manager(milvus_uri, name=n))  # a collection still loading has its replicas changed later
    assert run_pass(api, vectorindex(milvus_uri, n, inMemoryReplicas=2)) is None
    degraded = api.condition("Degraded")
    assert degraded["status"] == "True" and degraded["reason"] == "ReplicasRefused"
    assert "stays loaded with 1 replica" in degraded["message"]
    assert api.status["loadState"] == "Loaded" and api.status["inMemoryReplicas"] == 1
    assert ("Warning", "ReplicasRefused", degraded["message"]) in api.events
    manager(milvus_uri, name=n).drop()


# --- defect 6: fullText on a server without BM25 functions ----------------------------------------


def test_full_text_is_refused_before_anything_is_created_and_again_on_the_next_pass(milvus_uri: str) -> None:
    n = name("bm25")
    m = manager(milvus_uri, name=n, full_text_analyzer="standard")
    for _ in range(2):  # the second pass: the same refusal, not a false ImmutableFieldConflict
        with pytest.raises(UnsupportedByServer) as e:
            m.ensure(wait_loaded=True)
        assert "Milvus 2.5" in e.value.public and "2.3.5" in e.value.public and "remove spec.fullText" in e.value.public
        assert not m.client.has_collection(n)
    assert m.version is not None and m.version < (2, 5, 0)  # read once, at connect


def test_the_controller_names_the_version_and_the_fix_for_full_text(milvus_uri: str) -> None:
    n = name("bm25c")
    api = ApiStandIn()
    for _ in range(2):
        assert run_pass(api, vectorindex(milvus_uri, n, fullText={"analyzer": "standard"})) is not None
        ready = api.condition("Ready")
        assert ready["reason"] == "MilvusVersionUnsupported" and "2.3.5" in ready["message"]
    assert not manager(milvus_uri, name=n).client.has_collection(n)


# --- defect 7: a non-default database ------------------------------------------------------------


def test_a_collection_in_another_database(milvus_uri: str) -> None:
    # pymilvus 3's use_database asks DescribeDatabase, which Milvus 2.3 answers UNIMPLEMENTED.
    db, n = name("db"), name("indb")
    target = MilvusTarget(uri=milvus_uri, database=db, timeout=30)
    m = CollectionManager.connect(target, CollectionSpec(name=n, dimension=DIM))
    m.ensure(wait_loaded=True)
    sink = MilvusSink.connect(target, n)
    sink.upsert(rows(5))
    assert count(m) == 5
    default = manager(milvus_uri, name=n)
    assert not default.client.has_collection(n)  # it lives in db, not in default
    m.drop()


# --- shards and replicas read back; an index type change keeps the rows -------------------------


def test_shards_and_replicas_are_read_back_into_status(milvus_uri: str) -> None:
    n = name("shards")
    api = ApiStandIn()
    obj = vectorindex(milvus_uri, n, shards=4)
    run_pass(api, obj)  # creates the collection and starts loading it
    m = manager(milvus_uri, name=n, shards=4)
    wait_loaded(m)
    run_pass(api, obj)
    desc = m.client.describe_collection(n)
    assert desc["num_shards"] == 4
    channels = {ch for r in m.client.describe_replica(n) for ch in _channels(r)}
    assert len(channels) == 4  # 4 shards: 4 DML channels, each with a shard leader
    assert api.status["shards"] == 4 and api.status["inMemoryReplicas"] == 1
    m.drop()


def _channels(replica: Any) -> list[str]:
    shards = getattr(replica, "shards", None) or (replica.get("shards") if isinstance(replica, dict) else [])
    return [getattr(s, "channel_name", None) or s["channel_name"] for s in shards]


def test_an_index_type_change_rebuilds_over_the_same_rows(milvus_uri: str) -> None:
    n = name("rebuild")
    m = manager(milvus_uri, name=n, index_type="HNSW")
    m.ensure(wait_loaded=True)
    MilvusSink(m.client, n).upsert(rows(3000))
    m.client.flush(n)
    before = count(m)
    ivf = manager(milvus_uri, name=n, index_type="IVF_FLAT")
    done = ivf.ensure(wait_loaded=True)
    assert done.index_rebuilt and done.state.index_type == "IVF_FLAT" and done.state.load_state == "Loaded"
    assert before == count(ivf) == 3000
    ids = {r["id"] for r in ivf.client.query(n, filter='id != ""', output_fields=["id"], limit=16384)}
    assert ids == {r["id"] for r in rows(3000)}
    m.drop()
