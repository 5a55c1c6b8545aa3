"""VectorIndex: a Milvus collection and the build path that fills it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import Field

from agentfleet_contract.common import (
    DNS_SUBDOMAIN,
    QUANTITY,
    Condition,
    LocalObjectReference,
    Model,
    SecretKeyRef,
    conditions_field,
    default_obj,
)
from agentfleet_contract.rules import Rule, each_matches, immutable, item_validations, matches, no_credentials

MILVUS_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
MAX_SHARDS = 16
HNSW_PARAMS = ("M", "efConstruction")
IVF_BUILD_PARAMS = ("nlist", "m", "nbits")
# Build parameters used for the keys spec.index.params leaves out: Milvus 2.4+'s own defaults (knowhere's),
# so a server before 2.4, which has none and refuses a build without them ("efConstruction out of
# range"), builds the same index. IVF_PQ's m is the dimension over the widest sub-vector of 8, 4, 2
# or 1 that divides it (m must divide the dimension).
INDEX_BUILD_DEFAULTS: dict[str, dict[str, int]] = {
    "HNSW": {"M": 30, "efConstruction": 360},
    "IVF_FLAT": {"nlist": 128},
    "IVF_SQ8": {"nlist": 128},
    "IVF_PQ": {"nlist": 128, "nbits": 8},
}


def pq_m(dimension: int) -> int:
    """IVF_PQ's default m for a vector width: sub-vectors of 8 dimensions where 8 divides it."""
    return next(dimension // w for w in (8, 4, 2, 1) if dimension % w == 0)


def index_build_params(index_type: str, params: dict[str, int], dimension: int) -> dict[str, int]:
    """The build parameters an index is built with: spec.index.params over INDEX_BUILD_DEFAULTS.
    Computed where the index is built, never written into the spec."""
    defaults = dict(INDEX_BUILD_DEFAULTS.get(index_type, {}))
    if index_type == "IVF_PQ":
        defaults["m"] = pq_m(dimension)
    return {**defaults, **params}


class MilvusCredentials(Model):
    secret_name: str = Field(
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description=(
            "Secret in the same namespace holding the credentials; it must carry the label agentfleet.io/consent=true."
        ),
    )
    username_key: str = Field(default="username", max_length=253, description="Key of the user name in the Secret.")
    password_key: str = Field(default="password", max_length=253, description="Key of the password in the Secret.")


class ManagedMilvus(Model):
    mode: Literal["Standalone", "Cluster"] = Field(
        default="Standalone", description="Milvus Operator deployment mode; Cluster runs separate query nodes."
    )
    image: str | None = Field(
        default=None, max_length=512, description="Milvus image; unset uses the Milvus Operator's default."
    )
    query_node_memory: str = Field(
        default="8Gi",
        max_length=32,
        pattern=QUANTITY,
        description="Memory of one query node; sized so every in-memory replica fits.",
    )
    storage_size: str = Field(
        default="50Gi",
        max_length=32,
        pattern=QUANTITY,
        description="Persistent storage requested for the Milvus dependencies.",
    )


class MilvusTarget(Model):
    rules = (
        Rule(
            cel="has(self.uri) != has(self.managed)",
            message=(
                "spec.milvus needs exactly one of uri (an existing Milvus) or managed (deploy one through the Milvus "
                "Operator)"
            ),
            check=lambda m: (m.uri is None) != (m.managed is None),
        ),
        matches(
            "uri",
            "^(https?|tcp|grpc)://[^/]+",
            "spec.milvus.uri must look like http://host:19530 (scheme http, https, tcp or grpc)",
        ),
        no_credentials(
            "uri",
            "spec.milvus.uri",
            "spec.milvus.credentials (the Secret labelled agentfleet.io/consent=true)",
        ),
    )

    uri: str | None = Field(
        default=None,
        max_length=2048,
        description="Address of an existing Milvus, e.g. http://milvus.db:19530 or a Milvus Lite server.",
    )
    credentials: MilvusCredentials | None = Field(
        default=None, description="User name and password from a Secret; unset connects without authentication."
    )
    database: str = Field(
        default="default", max_length=255, pattern=MILVUS_NAME, description="Milvus database holding the collection."
    )
    managed: ManagedMilvus | None = Field(
        default=None, description="Deploy a Milvus for this index through the Milvus Operator instead of using uri."
    )


class PartitionKey(Model):
    field: str = Field(
        max_length=255, pattern=MILVUS_NAME, description="Metadata field whose value picks the partition, e.g. tenant."
    )
    num_partitions: int = Field(default=16, ge=1, le=1024, description="Partitions the key hashes into.")


class IndexSpec(Model):
    rules = (
        Rule(
            cel="self.type != 'HNSW' || !has(self.params) || self.params.all(k, k in ['M', 'efConstruction'])",
            message="spec.index.params for HNSW accepts only M and efConstruction: remove the other keys",
            check=lambda i: i.type != "HNSW" or all(k in HNSW_PARAMS for k in i.params),
            field_path=".params",
        ),
        Rule(
            cel="!self.type.startsWith('IVF') || !has(self.params) || self.params.all(k, k in ['nlist', 'm', 'nbits'])",
            message="spec.index.params for IVF indexes accepts only nlist, m and nbits: remove the other keys",
            check=lambda i: not i.type.startswith("IVF") or all(k in IVF_BUILD_PARAMS for k in i.params),
            field_path=".params",
        ),
    )

    type: Literal["HNSW", "IVF_FLAT", "IVF_SQ8", "IVF_PQ", "FLAT", "DISKANN", "AUTOINDEX"] = Field(
        default="HNSW", description="Milvus index type; changing it rebuilds the index without dropping data."
    )
    params: dict[str, int] = Field(
        default_factory=dict,
        max_length=16,
        description="Index build parameters; a key left out takes Milvus 2.4's default: HNSW M 30 and "
        "efConstruction 360, IVF_FLAT/IVF_SQ8 nlist 128, IVF_PQ nlist 128, nbits 8 and m dimension/8 (or /4, /2, /1).",
    )
    search_params: dict[str, int] = Field(
        default_factory=dict,
        max_length=16,
        description="Search parameters used by retrieval, e.g. ef for HNSW or nprobe for IVF.",
    )


class ConfigMapSource(Model):
    name: str = Field(max_length=253, pattern=DNS_SUBDOMAIN, description="ConfigMap whose keys are documents.")


class PVCSource(Model):
    claim_name: str = Field(
        max_length=253, pattern=DNS_SUBDOMAIN, description="PersistentVolumeClaim holding the documents."
    )
    path: str = Field(default="/", max_length=1024, description="Directory inside the volume, read recursively.")


SOURCE_URLS_NO_CREDENTIALS = no_credentials(
    "urls",
    "spec.source.urls",
    "a ConfigMap (spec.source.configMap) or a volume (spec.source.persistentVolumeClaim) holding the "
    "documents instead: the ingestion Job sends no credentials",
    each=True,
)


class Source(Model):
    rules = (
        Rule(
            cel=(
                "(has(self.configMap) ? 1 : 0) + (has(self.persistentVolumeClaim) ? 1 : 0) + (has(self.urls) ? 1 : 0) "
                "== 1"
            ),
            message="spec.source needs exactly one of configMap, persistentVolumeClaim or urls",
            check=lambda s: sum(x is not None for x in (s.config_map, s.persistent_volume_claim, s.urls)) == 1,
        ),
        each_matches("urls", "^https?://", "spec.source.urls must all start with http:// or https://"),
        SOURCE_URLS_NO_CREDENTIALS,
    )

    config_map: ConfigMapSource | None = Field(default=None, description="Documents stored as the keys of a ConfigMap.")
    persistent_volume_claim: PVCSource | None = Field(default=None, description="Documents as files on a volume.")
    # 512 characters a URL: the API server estimates the credentials rule's cost from the longest
    # string times the most items, and refused the CRD at 2,048 x 1,000 (3.4x its budget).
    urls: (
        list[Annotated[str, Field(max_length=512, json_schema_extra=item_validations(SOURCE_URLS_NO_CREDENTIALS))]]
        | None
    ) = Field(
        default=None,
        min_length=1,
        max_length=1000,
        description=(
            "Documents fetched over HTTP(S), each URL at most 512 characters; for more than 1,000 use a ConfigMap or "
            "a volume."
        ),
    )
    revision: str | None = Field(
        default=None,
        max_length=128,
        description="Version of the source; changing it starts a new ingestion Job (unset: derived from the source).",
    )


class Chunking(Model):
    rules = (
        Rule(
            cel="self.overlapTokens < self.maxTokens",
            message="spec.chunking.overlapTokens must be smaller than spec.chunking.maxTokens: lower the overlap",
            check=lambda c: c.overlap_tokens < c.max_tokens,
            field_path=".overlapTokens",
        ),
    )

    # 128: the sequence length all-MiniLM-L6-v2 was trained on (longer chunks are embedded less
    # well). Per token a shorter chunk costs only a little less (attention grows with length): its
    # higher chunks/s is mostly each chunk carrying half the text, so compare encoders in tokens/s.
    max_tokens: int = Field(
        default=128,
        ge=16,
        le=8192,
        description=(
            "Token budget of one chunk; chunks break at sentence and paragraph boundaries. 128 suits all-MiniLM-L6-v2."
        ),
    )
    overlap_tokens: int = Field(default=16, ge=0, le=4096, description="Tokens repeated between neighbouring chunks.")
    section_titles: bool = Field(
        default=False,
        description="Begin each chunk with its document's title and nearest heading, as embedded and as the "
        "model reads it.",
    )


class FullText(Model):
    analyzer: Literal["standard", "english"] = Field(
        default="standard",
        description="Milvus analyzer that cuts chunk text and queries into BM25 terms; english (Milvus 2.5+, "
        "not Milvus Lite) also stems.",
    )
    rrf_k: int = Field(
        default=60,
        ge=1,
        le=16384,
        description="Reciprocal rank fusion constant: a passage scores 1/(rrfK + rank) in each search; "
        "smaller favours top ranks.",
    )
    candidates: int = Field(
        default=20,
        ge=1,
        le=1024,
        description="Hits taken from each of the two searches before fusion; at least the tool's topK is taken.",
    )


class Embedding(Model):
    rules = (
        Rule(
            cel="self.provider != 'OpenAI' || has(self.endpoint)",
            message=(
                "spec.embedding.endpoint is required when spec.embedding.provider is OpenAI: give the /v1 base URL of "
                "the embedding server"
            ),
            check=lambda e: e.provider != "OpenAI" or e.endpoint is not None,
            field_path=".endpoint",
        ),
        no_credentials(
            "endpoint",
            "spec.embedding.endpoint",
            "spec.embedding.apiKeySecretRef (the Secret labelled agentfleet.io/consent=true)",
        ),
    )

    provider: Literal["Local", "OpenAI"] = Field(
        default="Local", description="Local runs MiniLM in the ingestion pod; OpenAI calls a /v1/embeddings endpoint."
    )
    model: str = Field(
        default="all-MiniLM-L6-v2",
        max_length=512,
        description="Embedding model name; must produce spec.dimension values.",
    )
    endpoint: str | None = Field(
        default=None, max_length=2048, description="Base URL of an OpenAI-compatible embeddings server (e.g. vLLM)."
    )
    api_key_secret_ref: SecretKeyRef | None = Field(
        default=None, description="Secret key holding the embeddings server's API key."
    )
    batch_size: int = Field(default=64, ge=1, le=4096, description="Chunks embedded per request.")


class Ingestion(Model):
    parallelism: int = Field(
        default=2, ge=1, le=256, description="Indexed Job workers; documents are split among them by hash."
    )
    image: str | None = Field(
        default=None,
        max_length=512,
        description="Image running the ingestion command; unset uses the operator's runtime image.",
    )
    insert_batch_size: int = Field(default=512, ge=1, le=100_000, description="Rows per Milvus upsert.")
    max_document_bytes: int = Field(
        default=10 * 1024 * 1024, ge=1, le=1 << 31, description="Documents larger than this are recorded as failed."
    )
    backoff_limit: int = Field(default=3, ge=0, le=100, description="Retries of a failed worker before the Job fails.")
    # No defaults written into objects: an operator older than these fields refuses what it does
    # not know, and a CRD default would have put them into every VectorIndex (seen on a shared cluster).
    cpu: str | None = Field(
        default=None,
        max_length=32,
        pattern=QUANTITY,
        description="CPU request of each worker pod (unset: 1); its limit is twice this and sizes the encoder threads.",
    )
    memory: str | None = Field(
        default=None,
        max_length=32,
        pattern=QUANTITY,
        description="Memory request of each worker pod (unset: 1Gi); its limit is twice this.",
    )


class VectorIndexSpec(Model):
    rules = (
        Rule(
            cel="!has(self.milvus.managed) || self.milvus.managed.mode == 'Cluster' || self.inMemoryReplicas == 1",
            message=(
                "spec.inMemoryReplicas above 1 needs spec.milvus.managed.mode Cluster: a standalone Milvus has one "
                "query node"
            ),
            check=lambda s: s.milvus.managed is None or s.milvus.managed.mode == "Cluster" or s.in_memory_replicas == 1,
            field_path=".inMemoryReplicas",
        ),
        Rule(
            cel="!(has(self.partitions) && has(self.partitionKey))",
            message=(
                "spec.partitions and spec.partitionKey exclude each other: name partitions yourself or let a key hash "
                "into them"
            ),
            check=lambda s: not (s.partitions and s.partition_key is not None),
        ),
        immutable("collection", "spec.collection", "create a new VectorIndex for another collection"),
        immutable(
            "dimension",
            "spec.dimension",
            "a collection's vector width cannot change; create a new VectorIndex and re-ingest",
        ),
        immutable(
            "shards", "spec.shards", "Milvus fixes shards when it creates the collection; create a new VectorIndex"
        ),
        immutable(
            "partition_key",
            "spec.partitionKey",
            "it is part of the collection schema; create a new VectorIndex",
            optional=True,
        ),
        Rule(
            cel="has(self.fullText) == has(oldSelf.fullText) "
            "&& (!has(self.fullText) || self.fullText.analyzer == oldSelf.fullText.analyzer)",
            message="spec.fullText and spec.fullText.analyzer are immutable: the BM25 field is part of the "
            "collection schema; create a new VectorIndex and re-ingest",
            field_path=".fullText",
        ),
    )

    milvus: MilvusTarget = Field(description="Milvus that holds the collection.")
    collection: str = Field(
        max_length=255,
        pattern=MILVUS_NAME,
        description="Milvus collection name.",
    )
    dimension: int = Field(
        default=384,
        ge=1,
        le=32768,
        description="Vector width; must match the embedding model (384 for MiniLM).",
    )
    metric: Literal["COSINE", "IP", "L2"] = Field(default="COSINE", description="Similarity metric of the index.")
    index: IndexSpec = default_obj("Vector index type and parameters.", IndexSpec)
    shards: int = Field(
        default=1,
        ge=1,
        le=MAX_SHARDS,
        description="Shards the collection's writes are split over, 1-16.",
    )
    partitions: list[Annotated[str, Field(max_length=255, pattern=MILVUS_NAME)]] | None = Field(
        default=None, max_length=1024, description="Named partitions to create."
    )
    partition_key: PartitionKey | None = Field(
        default=None,
        description="Partition by a metadata field instead of named partitions.",
    )
    in_memory_replicas: int = Field(
        default=1, ge=1, le=64, description="Copies of the collection loaded in query-node memory; a change reloads."
    )
    full_text: FullText | None = Field(
        default=None,
        description="Hybrid retrieval: Milvus' BM25 full-text index beside the vectors, both searched and fused "
        "by rank; unset searches vectors only.",
    )
    source: Source | None = Field(
        default=None, description="Where documents come from; unset means the collection is filled elsewhere."
    )
    chunking: Chunking = default_obj("How documents are cut into chunks.", Chunking)
    embedding: Embedding = default_obj("How chunks and queries are embedded.", Embedding)
    ingestion: Ingestion = default_obj("The ingestion Job.", Ingestion)
    deletion_policy: Literal["Retain", "Delete"] = Field(
        default="Retain", description="Retain keeps the collection when the VectorIndex is deleted; Delete drops it."
    )
    deletion_timeout_seconds: int = Field(
        default=300,
        ge=0,
        le=86400,
        description="Longest deletion waits for an unreachable Milvus before the object is released.",
    )


class IngestionFailure(Model):
    document: str = Field(max_length=2048, description="Document id or path.")
    reason: str = Field(max_length=1024, description="Why the document was skipped.")


class IngestionStatus(Model):
    revision: str | None = Field(default=None, description="Source revision of the latest ingestion.")
    job_name: str | None = Field(default=None, description="Job that ran it.")
    documents_total: int = Field(default=0, description="Documents found in the source.")
    documents_done: int = Field(default=0, description="Documents ingested.")
    documents_failed: int = Field(default=0, description="Documents skipped as bad.")
    chunks: int = Field(default=0, description="Chunks upserted.")
    started_at: datetime | None = Field(default=None, description="When ingestion began.")
    completed_at: datetime | None = Field(default=None, description="When ingestion finished.")
    failures: list[IngestionFailure] = Field(
        default_factory=list, max_length=100, description="The first failed documents and why."
    )


class VectorIndexStatus(Model):
    observed_generation: int | None = Field(default=None, description="metadata.generation last acted upon.")
    phase: Literal["Pending", "Creating", "Ingesting", "Ready", "Degraded", "Failed", "Deleting"] = Field(
        default="Pending", description="Coarse lifecycle phase; conditions hold the detail."
    )
    endpoint: str | None = Field(default=None, description="Milvus address in use.")
    row_count: int | None = Field(default=None, description="Entities in the collection.")
    load_state: Literal["NotLoad", "Loading", "Loaded"] | None = Field(
        default=None, description="Whether the collection is loaded in memory."
    )
    load_progress: int | None = Field(default=None, ge=0, le=100, description="Load progress in percent.")
    shards: int | None = Field(default=None, description="Shards the collection has.")
    in_memory_replicas: int | None = Field(default=None, description="In-memory replicas Milvus reports.")
    index_type: str | None = Field(default=None, description="Index type built on the vector field.")
    ingestion: IngestionStatus | None = Field(default=None, description="Progress of the latest ingestion.")
    conditions: list[Condition] = conditions_field()


class VectorIndex(Model):
    api_version: str = Field(default="agentfleet.io/v1alpha1", description="APIVersion of this object.")
    kind: str = Field(default="VectorIndex", description="Kind of this object.")
    metadata: dict = Field(default_factory=dict, description="Standard object metadata.")
    spec: VectorIndexSpec = Field(description="Desired state of the index.")
    status: VectorIndexStatus | None = Field(default=None, description="Observed state of the index.")


__all__ = ["LocalObjectReference", "VectorIndex", "VectorIndexSpec", "VectorIndexStatus"]
