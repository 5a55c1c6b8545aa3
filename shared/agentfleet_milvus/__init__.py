"""Milvus collections for VectorIndex: create, compare, rebuild the index, reload replicas, describe.

Used by the VectorIndex controller (``plan_collection`` in its decide step, ``CollectionManager`` to
read the collection and carry the plan out), by ingestion workers (through ``MilvusSink``) and by
retrieval (through ``MilvusTarget`` and the error types).

Collection schema (fixed, so retrieval and ingestion agree):
    id        VARCHAR(64), primary key: the chunk id (sha256 of source, index, text)
    text      VARCHAR(65535)
    source    VARCHAR(4096): document id (path or URL)
    metadata  JSON: document metadata, chunk index, ingestion revision
    <key>     VARCHAR(512), partition key, only when spec.partitionKey is set
    vector    FLOAT_VECTOR(dimension)
    sparse    SPARSE_FLOAT_VECTOR, only with spec.fullText: filled by Milvus' BM25 function from
              text (analyzed with spec.fullText.analyzer), indexed SPARSE_INVERTED_INDEX / BM25

Immutable once created: dimension, shards, the partition key and the full-text field (Milvus cannot change them);
a mismatch raises ``ImmutableFieldConflict`` with a message for the VectorIndex's conditions, and
nothing is changed. The index type, its parameters and the metric can change: the index is
dropped and rebuilt over the same rows. The replica number can change: release, then load again.

What we asked for is also recorded in collection properties (``agentfleet.io/...``): Milvus Lite
accepts ``num_shards`` and ``replica_number`` but keeps one shard and reports no replicas, and
some servers do not echo index build parameters; the record lets us compare against what was
requested while status still reports what the server says.

Errors: ``MilvusUnavailable`` (cannot reach the server, timeouts: set Degraded, retry with
backoff), ``ImmutableFieldConflict`` (spec asks for an impossible change: permanent until the spec
changes), ``MilvusRequestError`` (the server refused a request, e.g. bad index parameters).
"""

from __future__ import annotations

from agentfleet_milvus.collection import CollectionManager, Reconciled
from agentfleet_milvus.connection import CHANNEL_OPTIONS, MilvusTarget, parse_version, server_version, with_retries
from agentfleet_milvus.errors import (
    Conflict,
    ImmutableFieldConflict,
    MilvusError,
    MilvusRequestError,
    MilvusUnavailable,
    UnsupportedByServer,
    translate,
    translated,
)
from agentfleet_milvus.planning import (
    DEFAULT_PARTITION,
    CollectionPlan,
    DescribeIndex,
    IndexBuild,
    Load,
    new_collection,
    plan_collection,
)
from agentfleet_milvus.schema import (
    BM25_FUNCTION,
    DEFAULT_TIMEOUT,
    ID_MAX,
    INDEX_NAME,
    KEY_MAX,
    METADATA,
    PRIMARY,
    PROP_INDEX,
    PROP_MANAGED,
    PROP_REPLICAS,
    PROP_SHARDS,
    SOURCE,
    SOURCE_MAX,
    SPARSE,
    SPARSE_INDEX_NAME,
    TEXT,
    TEXT_MAX,
    VECTOR,
    CollectionSpec,
    CollectionState,
    LoadStateName,
    full_text_analyzer,
    immutable_conflicts,
    index_up_to_date,
    unsupported_by,
)
from agentfleet_milvus.sink import MilvusSink

__all__ = [
    "BM25_FUNCTION",
    "CHANNEL_OPTIONS",
    "CollectionManager",
    "CollectionPlan",
    "CollectionSpec",
    "CollectionState",
    "Conflict",
    "DEFAULT_PARTITION",
    "DEFAULT_TIMEOUT",
    "DescribeIndex",
    "ID_MAX",
    "INDEX_NAME",
    "ImmutableFieldConflict",
    "IndexBuild",
    "KEY_MAX",
    "Load",
    "LoadStateName",
    "METADATA",
    "MilvusError",
    "MilvusRequestError",
    "MilvusSink",
    "MilvusTarget",
    "MilvusUnavailable",
    "UnsupportedByServer",
    "PRIMARY",
    "PROP_INDEX",
    "PROP_MANAGED",
    "PROP_REPLICAS",
    "PROP_SHARDS",
    "Reconciled",
    "SOURCE",
    "SOURCE_MAX",
    "SPARSE",
    "SPARSE_INDEX_NAME",
    "TEXT",
    "TEXT_MAX",
    "VECTOR",
    "full_text_analyzer",
    "immutable_conflicts",
    "index_up_to_date",
    "new_collection",
    "parse_version",
    "plan_collection",
    "server_version",
    "translate",
    "translated",
    "unsupported_by",
    "with_retries",
]
