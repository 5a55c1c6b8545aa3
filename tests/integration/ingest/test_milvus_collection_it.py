"""CollectionManager against a real Milvus Lite server: create, update, refuse, rebuild, reload, drop."""

from __future__ import annotations

import random
import uuid

import pytest
from agentfleet_milvus import (
    CollectionManager,
    CollectionSpec,
    ImmutableFieldConflict,
    MilvusSink,
    MilvusTarget,
    MilvusUnavailable,
)

pytestmark = pytest.mark.integration
DIM = 16


def _name() -> str:
    return "c_" + uuid.uuid4().hex[:12]


def _rows(n: int, revision: str = "r1", key: str | None = None) -> list[dict]:
    rng = random.Random(n)
    rows = []
    for i in range(n):
        row = {
            "id": f"id{i}",
            "text": f"text {i}",
            "source": f"doc{i % 7}",
            "metadata": {"revision": revision, "chunk": i},
            "vector": [rng.random() for _ in range(DIM)],
        }
        if key:
            row[key] = f"t{i % 3}"
        rows.append(row)
    return rows


@pytest.fixture
def target(milvus_uri: str) -> MilvusTarget:
    return MilvusTarget(uri=milvus_uri, database="it_collections")


def _manager(target: MilvusTarget, **kw) -> CollectionManager:  # type: ignore[no-untyped-def]
    spec = CollectionSpec(**{"name": _name(), "dimension": DIM, "index_params": {"M": 8, "efConstruction": 32}, **kw})
    return CollectionManager.connect(target, spec)


def test_create_reports_schema_index_and_load(target: MilvusTarget) -> None:
    m = _manager(target, shards=2, replicas=1)
    r = m.ensure(wait_loaded=True)
    assert r.created
    s = r.state
    assert s.exists and s.dimension == DIM and s.index_type == "HNSW" and s.metric == "COSINE"
    assert s.load_state == "Loaded" and s.load_progress == 100 and s.row_count == 0
    assert s.requested_shards == 2  # Milvus Lite itself keeps one shard, and says so
    assert s.shards == 1 and any("shard" in n for n in r.notes)
    assert s.status() == {
        "rowCount": 0,
        "loadState": "Loaded",
        "loadProgress": 100,
        "shards": 1,
        "inMemoryReplicas": 1,
        "indexType": "HNSW",
    }
    # A second ensure changes nothing.
    again = m.ensure(wait_loaded=True)
    assert not (again.created or again.index_rebuilt or again.reloaded)


def test_ensure_without_waiting_starts_the_load_and_describe_follows_it(target: MilvusTarget) -> None:
    import time

    m = _manager(target)
    r = m.ensure(wait_loaded=False)  # what a controller calls: never blocks on a large load
    assert r.state.load_state in ("Loading", "Loaded")
    deadline = time.monotonic() + 30
    while m.describe().load_state != "Loaded":
        assert time.monotonic() < deadline, "collection never finished loading"
        time.sleep(0.2)
    assert m.describe().load_progress == 100


def test_upserts_count_once_and_prune_old_revisions(target: MilvusTarget) -> None:
    m = _manager(target)
    m.ensure(wait_loaded=True)
    sink = MilvusSink(m.client, m.spec.name)
    sink.upsert(_rows(50, "r1"))
    sink.upsert(_rows(50, "r1"))  # same ids: replaced, not duplicated
    assert m.describe().row_count == 50
    sink.upsert(_rows(30, "r2"))  # ids 0..29 rewritten by revision r2
    m.prune_revisions("r2")
    assert m.describe().row_count == 30


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"dimension": DIM * 2}, "spec.dimension"),
        ({"shards": 4}, "spec.shards"),
        ({"partition_key": "tenant"}, "spec.partitionKey.field"),
    ],
)
def test_immutable_field_changes_are_refused_and_nothing_changes(
    target: MilvusTarget, change: dict, field: str
) -> None:
    m = _manager(target, shards=2)
    m.ensure(wait_loaded=True)
    MilvusSink(m.client, m.spec.name).upsert(_rows(20))
    before = m.describe()
    changed = CollectionManager(m.client, CollectionSpec(**{**m.spec.__dict__, **change}))
    with pytest.raises(ImmutableFieldConflict) as err:
        changed.ensure()
    assert [c.field for c in err.value.conflicts] == [field]
    assert field in str(err.value) and "new VectorIndex" in str(err.value)
    after = m.describe()
    assert (after.dimension, after.requested_shards, after.partition_key, after.row_count) == (
        before.dimension,
        before.requested_shards,
        before.partition_key,
        20,
    )


def test_index_change_rebuilds_without_losing_rows(target: MilvusTarget) -> None:
    m = _manager(target)
    m.ensure(wait_loaded=True)
    rows = _rows(200)
    MilvusSink(m.client, m.spec.name).upsert(rows)
    ivf = CollectionManager(
        m.client, CollectionSpec(**{**m.spec.__dict__, "index_type": "IVF_FLAT", "index_params": {"nlist": 16}})
    )
    r = ivf.ensure(wait_loaded=True)
    assert r.index_rebuilt and not r.created
    assert r.state.index_type == "IVF_FLAT" and r.state.load_state == "Loaded" and r.state.row_count == 200
    # Parameters alone (same type) also rebuild; the metric too.
    r2 = CollectionManager(m.client, CollectionSpec(**{**ivf.spec.__dict__, "index_params": {"nlist": 32}})).ensure(
        wait_loaded=True
    )
    assert r2.index_rebuilt and r2.state.row_count == 200
    r3 = CollectionManager(
        m.client, CollectionSpec(**{**ivf.spec.__dict__, "index_params": {"nlist": 32}, "metric": "IP"})
    ).ensure(wait_loaded=True)
    assert r3.index_rebuilt and r3.state.metric == "IP" and r3.state.row_count == 200
    hit = m.client.search(
        m.spec.name, data=[rows[5]["vector"]], limit=1, search_params={"metric_type": "IP", "params": {"nprobe": 32}}
    )
    assert len(hit[0]) == 1


def test_an_ensure_without_detail_scans_no_rows_trusts_the_index_record_and_still_rebuilds(
    target: MilvusTarget,
) -> None:
    """What a controller's pass calls (issue 22): no row count, no index description (each a pass
    over every row on Milvus Lite) while the index record says the spec's index was built."""
    m = _manager(target)
    m.ensure(wait_loaded=True)
    MilvusSink(m.client, m.spec.name).upsert(_rows(20))
    cheap = m.ensure(detail=False)
    assert not (cheap.created or cheap.index_rebuilt or cheap.reloaded)
    s = cheap.state
    assert (
        s.row_count is None
        and not s.index_described
        and (s.index_type, s.metric, s.load_state) == ("HNSW", "COSINE", "Loaded")
    )
    assert m.count_rows(s.load_state) == 20
    # Another index than the record: described, then rebuilt over the same rows.
    ivf = CollectionManager(
        m.client, CollectionSpec(**{**m.spec.__dict__, "index_type": "IVF_FLAT", "index_params": {"nlist": 16}})
    )
    r = ivf.ensure(wait_loaded=True, detail=False)
    assert r.index_rebuilt and r.state.index_type == "IVF_FLAT"
    full = ivf.describe()
    assert full.index_described and full.index_type == "IVF_FLAT" and full.row_count == 20


def test_replica_change_releases_and_reloads(target: MilvusTarget) -> None:
    m = _manager(target, replicas=1)
    m.ensure(wait_loaded=True)
    MilvusSink(m.client, m.spec.name).upsert(_rows(10))
    two = CollectionManager(m.client, CollectionSpec(**{**m.spec.__dict__, "replicas": 2}))
    r = two.ensure(wait_loaded=True)
    assert r.reloaded and not r.index_rebuilt
    assert r.state.load_state == "Loaded" and r.state.row_count == 10
    # Milvus Lite cannot describe replicas: the state says so and shows the number loaded with.
    assert r.state.replicas == 2 and r.state.replicas_reported is False
    assert not two.ensure(wait_loaded=True).reloaded


def test_named_partitions_are_created_and_kept(target: MilvusTarget) -> None:
    m = _manager(target, partitions=("alpha", "beta"))
    r = m.ensure(wait_loaded=True)
    assert {"alpha", "beta"} <= set(r.state.partitions)
    more = CollectionManager(m.client, CollectionSpec(**{**m.spec.__dict__, "partitions": ("beta", "gamma")}))
    r2 = more.ensure(wait_loaded=True)
    assert r2.partitions_created == ("gamma",)
    assert {"alpha", "beta", "gamma"} <= set(r2.state.partitions)  # alpha kept: dropping loses data


def test_partition_key_collection_accepts_keyed_rows(target: MilvusTarget) -> None:
    m = _manager(target, partition_key="tenant", num_partitions=4)
    r = m.ensure(wait_loaded=True)
    assert r.state.partition_key == "tenant"
    MilvusSink(m.client, m.spec.name).upsert(_rows(30, key="tenant"))
    got = m.client.query(m.spec.name, filter='tenant == "t1"', output_fields=["count(*)"], consistency_level="Strong")
    assert got[0]["count(*)"] == 10


def test_drop_and_drop_missing(target: MilvusTarget) -> None:
    m = _manager(target)
    m.ensure()
    assert m.drop() is True
    assert m.describe().exists is False
    assert m.drop() is False


def test_unreachable_milvus_raises_the_retryable_error() -> None:
    from e2e.harness.ports import free_port

    dead = MilvusTarget(uri=f"http://127.0.0.1:{free_port()}", timeout=2)
    with pytest.raises(MilvusUnavailable) as err:
        CollectionManager.connect(dead, CollectionSpec(name="x", dimension=DIM)).ensure()
    assert err.value.retryable


def test_server_going_away_mid_session_is_unavailable(target: MilvusTarget, milvus_uri) -> None:  # type: ignore[no-untyped-def]
    """A client whose server stops answers MilvusUnavailable, not a raw grpc error (own server)."""
    import tempfile
    from pathlib import Path

    from e2e.harness.milvus import MilvusLiteServer

    own = MilvusLiteServer(Path(tempfile.mkdtemp()) / "data")
    own.wait_ready()
    m = CollectionManager.connect(MilvusTarget(uri=own.uri, timeout=3), CollectionSpec(name=_name(), dimension=DIM))
    m.ensure()
    own.stop()
    with pytest.raises(MilvusUnavailable):
        m.describe()
