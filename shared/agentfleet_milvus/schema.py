"""The fixed collection schema, and desired (CollectionSpec) against observed (CollectionState) state: pure."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from agentfleet_contract.vectorindex import index_build_params

from agentfleet_milvus.errors import Conflict

PRIMARY = "id"
TEXT = "text"
SOURCE = "source"
METADATA = "metadata"
VECTOR = "vector"
INDEX_NAME = "vector"
# Hybrid retrieval (spec.fullText): Milvus' BM25 function turns ``text`` into this sparse vector on
# every insert, so ingestion writes the same rows with or without it.
SPARSE = "sparse"
SPARSE_INDEX_NAME = "sparse"
BM25_FUNCTION = "bm25"
ID_MAX = 64
TEXT_MAX = 65535
SOURCE_MAX = 4096
KEY_MAX = 512
PROP_SHARDS = "agentfleet.io/shards"
PROP_INDEX = "agentfleet.io/index"
PROP_REPLICAS = "agentfleet.io/replicas"
PROP_MANAGED = "agentfleet.io/managed-by"
DEFAULT_TIMEOUT = 10.0

LoadStateName = Literal["NotLoad", "Loading", "Loaded"]


# --- Desired and observed state (pure) ---------------------------------------------------------


@dataclass(frozen=True)
class CollectionSpec:
    name: str
    dimension: int
    metric: str = "COSINE"
    index_type: str = "HNSW"
    index_params: Mapping[str, int] = field(default_factory=dict)
    shards: int = 1
    partitions: tuple[str, ...] = ()
    partition_key: str | None = None
    num_partitions: int = 16
    replicas: int = 1
    full_text_analyzer: str | None = None  # set: the collection has the BM25 sparse field (hybrid retrieval)

    @classmethod
    def from_vectorindex(cls, spec: Any) -> CollectionSpec:
        """From a VectorIndexSpec (the pydantic model, or anything with its attribute names)."""
        pk = getattr(spec, "partition_key", None)
        full_text = getattr(spec, "full_text", None)
        index = spec.index
        return cls(
            name=spec.collection,
            dimension=int(spec.dimension),
            metric=spec.metric,
            index_type=index.type,
            index_params=dict(index.params or {}),
            shards=int(spec.shards),
            partitions=tuple(spec.partitions or ()),
            partition_key=pk.field if pk is not None else None,
            num_partitions=int(pk.num_partitions) if pk is not None else 16,
            replicas=int(spec.in_memory_replicas),
            full_text_analyzer=full_text.analyzer if full_text is not None else None,
        )

    def build_params(self) -> dict[str, int]:
        """The parameters the index is built with: index_params over the API's defaults (Milvus before
        2.4 has none and refuses a build without them)."""
        return index_build_params(self.index_type, dict(self.index_params), self.dimension)

    def index_record(self) -> str:
        return record_of(self.index_type, self.metric, self.build_params())


@dataclass(frozen=True)
class CollectionState:
    exists: bool
    row_count: int | None = None
    load_state: LoadStateName | None = None
    load_progress: int | None = None
    shards: int | None = None  # as the server reports
    requested_shards: int | None = None  # as recorded at creation
    replicas: int | None = None
    replicas_reported: bool = False  # False: the server cannot describe replicas; ``replicas`` is what we loaded with
    index_type: str | None = None
    metric: str | None = None
    index_params: Mapping[str, Any] = field(default_factory=dict)
    index_record: str | None = None
    dimension: int | None = None
    partition_key: str | None = None
    partitions: tuple[str, ...] = ()
    full_text_analyzer: str | None = None  # the analyzer of the BM25 function's input, None without one
    # False: the index fields are our record of the index we built (PROP_INDEX), not the server's
    # description of it (describe(index=False)).
    index_described: bool = True

    def status(self) -> dict[str, Any]:
        """The VectorIndex status fields this state fills (camelCase, unknowns left out)."""
        s = {
            "rowCount": self.row_count,
            "loadState": self.load_state,
            "loadProgress": self.load_progress,
            "shards": self.shards,
            "inMemoryReplicas": self.replicas,
            "indexType": self.index_type,
        }
        return {k: v for k, v in s.items() if v is not None}


def immutable_conflicts(spec: CollectionSpec, state: CollectionState) -> list[Conflict]:
    """Fields the spec wants different from an existing collection that Milvus cannot change."""
    out = []
    if state.dimension is not None and state.dimension != spec.dimension:
        out.append(Conflict("spec.dimension", state.dimension, spec.dimension))
    shards = state.requested_shards if state.requested_shards is not None else state.shards
    if shards is not None and shards != spec.shards:
        out.append(Conflict("spec.shards", shards, spec.shards))
    if state.partition_key != spec.partition_key:
        out.append(Conflict("spec.partitionKey.field", state.partition_key or "unset", spec.partition_key or "unset"))
    if state.full_text_analyzer != spec.full_text_analyzer:
        existing, desired = state.full_text_analyzer or "unset", spec.full_text_analyzer or "unset"
        out.append(Conflict("spec.fullText.analyzer", existing, desired))
    return out


def _kind(t: Any) -> str:
    return str(getattr(t, "name", t))


def full_text_analyzer(desc: Mapping[str, Any]) -> str | None:
    """The analyzer type of a described collection's BM25 input field, None when it has no BM25
    function. A server that does not echo the analyzer's parameters reports "standard", Milvus'
    default."""
    functions = [f for f in desc.get("functions") or () if _kind(f.get("type")).upper().endswith("BM25")]
    if not functions:
        return None
    inputs = set(functions[0].get("input_field_names") or ())
    for f in desc.get("fields", []):
        if f.get("name") in inputs:
            params = f.get("params") or {}
            analyzer = params.get("analyzer_params")
            if isinstance(analyzer, str):
                try:
                    analyzer = json.loads(analyzer)
                except ValueError:
                    analyzer = None
            if isinstance(analyzer, Mapping) and analyzer.get("type"):
                return str(analyzer["type"])
    return "standard"


def number(v: Any) -> Any:
    try:
        return int(v)
    except (TypeError, ValueError):
        return v


def recorded_index(record: str | None) -> tuple[str | None, str | None, dict[str, Any]]:
    """(type, metric, params) of an index record (CollectionSpec.index_record); Nones when there is none."""
    try:
        r = json.loads(record) if record else None
    except ValueError:
        r = None
    if not isinstance(r, Mapping):
        return None, None, {}
    params = r.get("params")
    return r.get("type"), r.get("metric"), dict(params) if isinstance(params, Mapping) else {}


def record_of(index_type: str, metric: str, params: Mapping[str, Any]) -> str:
    return json.dumps({"type": index_type, "metric": metric, "params": dict(sorted(params.items()))}, sort_keys=True)


def index_up_to_date(spec: CollectionSpec, state: CollectionState) -> bool:
    if state.index_type is None:
        return False
    if state.index_type != spec.index_type or (state.metric or "").upper() != spec.metric:
        return False
    wanted = spec.build_params()
    # Build parameters the server echoes must match; when it echoes none, trust our record.
    for k, v in wanted.items():
        if k in state.index_params and number(state.index_params[k]) != v:
            return False
    if state.index_record is None:
        return True
    # A record written before defaults were filled in ({} for a default HNSW) names the same index.
    kind, metric, params = recorded_index(state.index_record)
    if kind is None or metric is None:
        return False
    return record_of(kind, metric, index_build_params(kind, params, spec.dimension)) == spec.index_record()


# Features a collection may ask for and the first Milvus with each (Milvus Lite, version None, has both).
BM25_SINCE = (2, 5, 0)  # BM25 functions and analyzers; an older server drops the function silently
HYBRID_SINCE = (2, 4, 0)  # HybridSearch (the retriever's fusion of the two searches)


def unsupported_by(spec: CollectionSpec, version: tuple[int, int, int] | None) -> str | None:
    """Why a server of ``version`` cannot hold ``spec``'s collection (our words, for status), or None."""
    if version is None or spec.full_text_analyzer is None or version >= BM25_SINCE:
        return None
    have = ".".join(map(str, version))
    return (
        f"spec.fullText needs Milvus 2.5 or later (BM25 functions; hybrid search needs 2.4) and this Milvus "
        f"is {have}: upgrade Milvus, or remove spec.fullText for vector search only (the collection was not "
        "created or changed)"
    )
