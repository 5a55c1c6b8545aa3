"""Pure decisions behind issue 56's Milvus defects: build parameters by default, the version read
at connect, and which specs a server version cannot hold."""

from __future__ import annotations

from agentfleet_contract.vectorindex import index_build_params, pq_m
from agentfleet_milvus import CollectionSpec, CollectionState, index_up_to_date, parse_version, unsupported_by


def test_every_index_type_gets_explicit_build_parameters_and_the_spec_wins() -> None:
    assert index_build_params("HNSW", {}, 384) == {"M": 30, "efConstruction": 360}
    assert index_build_params("HNSW", {"M": 16}, 384) == {"M": 16, "efConstruction": 360}
    assert index_build_params("IVF_FLAT", {}, 384) == {"nlist": 128}
    assert index_build_params("IVF_SQ8", {"nlist": 64}, 384) == {"nlist": 64}
    assert index_build_params("IVF_PQ", {}, 384) == {"nlist": 128, "nbits": 8, "m": 48}
    assert index_build_params("FLAT", {}, 384) == {} and index_build_params("AUTOINDEX", {}, 384) == {}


def test_pq_m_divides_the_dimension() -> None:
    for dim in (8, 12, 30, 384, 768, 1536, 7, 1):
        assert dim % pq_m(dim) == 0
    assert (pq_m(384), pq_m(12), pq_m(30), pq_m(7)) == (48, 3, 15, 7)


def test_a_record_written_before_the_defaults_names_the_same_index() -> None:
    spec = CollectionSpec(name="c", dimension=384)
    old = '{"metric": "COSINE", "params": {}, "type": "HNSW"}'
    state = CollectionState(exists=True, index_type="HNSW", metric="COSINE", index_record=old)
    assert index_up_to_date(spec, state)  # no rebuild of every existing index on upgrade
    other = CollectionState(exists=True, index_type="HNSW", metric="COSINE", index_params={"M": "16"})
    assert not index_up_to_date(spec, other)  # the server says it was built with M 16: the spec asks 30


def test_server_versions() -> None:
    assert parse_version("v2.3.5-lite") == (2, 3, 5)
    assert parse_version("2.5.1") == (2, 5, 1)
    assert parse_version("v2.4") == (2, 4, 0)
    assert parse_version("milvus_lite-3.2.2") is None and parse_version("") is None


def test_full_text_needs_milvus_2_5_and_lite_is_let_through() -> None:
    spec = CollectionSpec(name="c", dimension=8, full_text_analyzer="standard")
    why = unsupported_by(spec, (2, 3, 5))
    assert why is not None and "2.3.5" in why and "Milvus 2.5" in why and "remove spec.fullText" in why
    assert unsupported_by(spec, (2, 4, 9)) is not None
    assert unsupported_by(spec, (2, 5, 0)) is None and unsupported_by(spec, None) is None
    assert unsupported_by(CollectionSpec(name="c", dimension=8), (2, 3, 5)) is None
