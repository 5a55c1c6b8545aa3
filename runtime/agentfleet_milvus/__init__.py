"""Milvus collections for VectorIndex: create, compare, rebuild the index, reload replicas, describe.

Used by the VectorIndex controller (through ``CollectionManager``), by ingestion workers (through
``MilvusSink``) and by retrieval (through ``MilvusTarget`` and the error types).

Collection schema (fixed, so retrieval and ingestion agree):
    id        VARCHAR(64), primary key: the chunk id (sha256 of source, index, text)
    text      VARCHAR(65535)
    source    VARCHAR(4096): document id (path or URL)
    metadata  JSON: document metadata, chunk index, ingestion revision
    <key>     VARCHAR(512), partition key, only when spec.partitionKey is set
    vector    FLOAT_VECTOR(dimension)

Immutable once created: dimension, shards and the partition key (Milvus cannot change them);
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

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

log = logging.getLogger(__name__)

PRIMARY = "id"
TEXT = "text"
SOURCE = "source"
METADATA = "metadata"
VECTOR = "vector"
INDEX_NAME = "vector"
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


# --- Errors ------------------------------------------------------------------------------------


class MilvusError(RuntimeError):
    """Base of every error this module raises."""

    retryable = False


class MilvusUnavailable(MilvusError):
    """Milvus cannot be reached or did not answer in time. Retry with backoff."""

    retryable = True


class MilvusRequestError(MilvusError):
    """Milvus answered and refused the request (bad parameters, unsupported call)."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Conflict:
    field: str  # spec field path, e.g. spec.dimension
    existing: Any
    desired: Any


class ImmutableFieldConflict(MilvusError):
    """The collection exists with values the spec may not change."""

    def __init__(self, collection: str, conflicts: Sequence[Conflict]) -> None:
        self.collection = collection
        self.conflicts = tuple(conflicts)
        parts = "; ".join(f"{c.field} is {c.existing} in the existing collection, the spec asks for {c.desired}" for c in self.conflicts)
        super().__init__(
            f"collection {collection!r} cannot be changed in place: {parts}. These are fixed when Milvus creates a collection: "
            "restore the old values, or use a new collection name (a new VectorIndex) and re-ingest"
        )


_UNAVAILABLE_HINTS = ("fail connecting", "unavailable", "deadline", "timeout", "timed out", "connection refused", "connect failed", "server is not ready")


def translate(e: BaseException) -> MilvusError:
    """Any pymilvus/grpc/socket error as one of ours."""
    if isinstance(e, MilvusError):
        return e
    try:
        import grpc

        if isinstance(e, grpc.RpcError):
            code = e.code() if callable(getattr(e, "code", None)) else None
            details = e.details() if callable(getattr(e, "details", None)) else str(e)
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED, grpc.StatusCode.RESOURCE_EXHAUSTED):
                return MilvusUnavailable(f"Milvus unavailable: {code.name}: {details}")
            return MilvusRequestError(f"Milvus refused the call: {getattr(code, 'name', code)}: {details}")
    except ImportError:  # pragma: no cover - grpc comes with pymilvus
        pass
    try:
        from pymilvus.exceptions import MilvusException, MilvusUnavailableException

        if isinstance(e, MilvusUnavailableException):
            return MilvusUnavailable(f"Milvus unavailable: {e.message}")
        if isinstance(e, MilvusException):
            msg = e.message or str(e)
            if e.code == 2 or any(h in msg.lower() for h in _UNAVAILABLE_HINTS):
                return MilvusUnavailable(f"Milvus unavailable: {msg}")
            return MilvusRequestError(f"Milvus refused the request: {msg}", e.code)
    except ImportError:  # pragma: no cover
        pass
    if isinstance(e, (ConnectionError, TimeoutError, OSError)):
        return MilvusUnavailable(f"Milvus unavailable: {e}")
    return MilvusRequestError(f"unexpected error talking to Milvus: {type(e).__name__}: {e}")


@contextlib.contextmanager
def translated() -> Iterator[None]:
    try:
        yield
    except MilvusError:
        raise
    except Exception as e:  # noqa: BLE001 - everything from the client is translated
        raise translate(e) from e


# --- Connection --------------------------------------------------------------------------------


@dataclass(frozen=True)
class MilvusTarget:
    """Where the collection lives. ``token`` is "user:password" or an API key."""

    uri: str
    database: str = "default"
    user: str = ""
    password: str = ""
    token: str = ""
    timeout: float = DEFAULT_TIMEOUT

    def connect(self, *, create_database: bool = False) -> Any:
        """A MilvusClient on ``database``; with ``create_database`` the database is created if missing."""
        from pymilvus import MilvusClient

        with translated():
            # dedicated: pymilvus otherwise shares one channel per address across clients, and a
            # shared channel that went idle is re-dialled with the timeout of whichever client
            # created it first, not ours.
            client = MilvusClient(uri=self.uri, user=self.user, password=self.password, token=self.token, timeout=self.timeout, dedicated=True)
            if self.database and self.database != "default":
                if self.database not in client.list_databases(timeout=self.timeout):
                    if not create_database:
                        raise MilvusRequestError(f"database {self.database!r} does not exist in Milvus at {self.uri}")
                    client.create_database(self.database, timeout=self.timeout)
                client.use_database(self.database)
            return client


def with_retries(
    call: Callable[[], Any], *, attempts: int = 6, first_delay: float = 0.5, max_delay: float = 15.0, sleep: Callable[[float], None] = time.sleep
) -> Any:
    """Run ``call``; retry MilvusUnavailable with exponential backoff, re-raise anything else."""
    delay = first_delay
    for attempt in range(1, attempts + 1):
        try:
            with translated():
                return call()
        except MilvusUnavailable as e:
            if attempt == attempts:
                raise
            log.warning("Milvus unavailable (attempt %d/%d), retrying in %.1fs: %s", attempt, attempts, delay, e)
            sleep(delay)
            delay = min(delay * 2, max_delay)
    raise AssertionError("unreachable")


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

    @classmethod
    def from_vectorindex(cls, spec: Any) -> CollectionSpec:
        """From a VectorIndexSpec (the pydantic model, or anything with its attribute names)."""
        pk = getattr(spec, "partition_key", None)
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
        )

    def index_record(self) -> str:
        return json.dumps({"type": self.index_type, "metric": self.metric, "params": dict(sorted(self.index_params.items()))}, sort_keys=True)


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
    return out


def _num(v: Any) -> Any:
    try:
        return int(v)
    except (TypeError, ValueError):
        return v


def index_up_to_date(spec: CollectionSpec, state: CollectionState) -> bool:
    if state.index_type is None:
        return False
    if state.index_type != spec.index_type or (state.metric or "").upper() != spec.metric:
        return False
    # Build parameters the server echoes must match; when it echoes none, trust our record.
    for k, v in spec.index_params.items():
        if k in state.index_params and _num(state.index_params[k]) != v:
            return False
    return state.index_record is None or state.index_record == spec.index_record()


# --- The manager --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reconciled:
    state: CollectionState
    created: bool = False
    index_rebuilt: bool = False
    reloaded: bool = False
    partitions_created: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


_LOAD_STATES: dict[str, LoadStateName | None] = {"NotExist": None, "NotLoad": "NotLoad", "Loading": "Loading", "Loaded": "Loaded"}


class CollectionManager:
    """Makes one collection match a CollectionSpec. Every method raises only MilvusError subclasses."""

    def __init__(self, client: Any, spec: CollectionSpec, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.client = client
        self.spec = spec
        self.timeout = timeout
        self._replicas_unsupported = False

    @classmethod
    def connect(cls, target: MilvusTarget, spec: CollectionSpec, *, attempts: int = 3) -> CollectionManager:
        """Connect (creating the database if missing). A refused dial is retried briefly: gRPC
        channels can be mid-reconnect (e.g. after a server GOAWAY); longer outages raise
        MilvusUnavailable for the caller's own backoff."""
        return cls(with_retries(lambda: target.connect(create_database=True), attempts=attempts), spec, timeout=target.timeout)

    # -- observe --

    def exists(self) -> bool:
        with translated():
            return bool(self.client.has_collection(self.spec.name, timeout=self.timeout))

    def describe(self) -> CollectionState:
        name, t = self.spec.name, self.timeout
        with translated():
            if not self.client.has_collection(name, timeout=t):
                return CollectionState(exists=False)
            desc = self.client.describe_collection(name, timeout=t)
            props = {str(k): str(v) for k, v in (desc.get("properties") or {}).items()}
            dim, pk = None, None
            for f in desc.get("fields", []):
                if f.get("name") == VECTOR:
                    dim = _num((f.get("params") or {}).get("dim"))
                if f.get("is_partition_key"):
                    pk = f.get("name")
            load = self.client.get_load_state(name, timeout=t)
            state_name = getattr(load.get("state"), "name", str(load.get("state")))
            load_state = _LOAD_STATES.get(state_name)
            progress = load.get("progress")
            if load_state == "Loaded":
                progress = 100
            elif load_state == "NotLoad":
                progress = 0
            index_type = metric = None
            index_params: dict[str, Any] = {}
            if INDEX_NAME in (self.client.list_indexes(name, timeout=t) or []):
                idx = self.client.describe_index(name, INDEX_NAME, timeout=t) or {}
                index_type, metric = idx.get("index_type"), idx.get("metric_type")
                skip = {"index_type", "metric_type", "field_name", "index_name", "total_rows", "indexed_rows", "pending_index_rows", "state", "params"}
                index_params = {k: v for k, v in idx.items() if k not in skip}
                nested = idx.get("params")
                if isinstance(nested, str):
                    with contextlib.suppress(ValueError):
                        nested = json.loads(nested)
                if isinstance(nested, Mapping):
                    index_params.update(nested)
            replicas, reported = self._replicas(props, load_state)
            rows = self._row_count(load_state)
            partitions: tuple[str, ...] = ()
            if pk is None:
                partitions = tuple(sorted(self.client.list_partitions(name, timeout=t)))
        requested = props.get(PROP_SHARDS)
        return CollectionState(
            exists=True,
            row_count=rows,
            load_state=load_state,
            load_progress=None if progress is None else int(progress),
            shards=_num(desc.get("num_shards")),
            requested_shards=int(requested) if requested and requested.isdigit() else None,
            replicas=replicas,
            replicas_reported=reported,
            index_type=index_type,
            metric=metric,
            index_params=index_params,
            index_record=props.get(PROP_INDEX),
            dimension=dim,
            partition_key=pk,
            partitions=partitions,
        )

    def _replicas(self, props: Mapping[str, str], load_state: LoadStateName | None) -> tuple[int | None, bool]:
        if load_state != "Loaded":
            return (0 if load_state == "NotLoad" else None), True
        recorded = props.get(PROP_REPLICAS)
        fallback = (int(recorded) if recorded and recorded.isdigit() else None), False
        if self._replicas_unsupported:
            return fallback
        rpc_log = logging.getLogger("pymilvus.decorators")
        level = rpc_log.level
        rpc_log.setLevel(logging.CRITICAL)  # an UNIMPLEMENTED answer is expected here, not an error to log
        try:
            return len(self.client.describe_replica(self.spec.name, timeout=self.timeout)), True
        except Exception as e:  # noqa: BLE001 - Milvus Lite answers UNIMPLEMENTED
            err = translate(e)
            if isinstance(err, MilvusUnavailable):
                raise err from e
            self._replicas_unsupported = True
            return fallback
        finally:
            rpc_log.setLevel(level)

    def _row_count(self, load_state: LoadStateName | None) -> int:
        if load_state == "Loaded":
            # count(*) sees upserts and deletes exactly; the stats count rows not yet compacted away.
            res = self.client.query(self.spec.name, filter="", output_fields=["count(*)"], consistency_level="Strong", timeout=self.timeout)
            return int(res[0]["count(*)"])
        return int(self.client.get_collection_stats(self.spec.name, timeout=self.timeout).get("row_count", 0))

    # -- change --

    def _schema(self) -> Any:
        from pymilvus import DataType

        schema = self.client.create_schema(auto_id=False, enable_dynamic_field=False, description="agentfleet VectorIndex chunks")
        schema.add_field(PRIMARY, DataType.VARCHAR, is_primary=True, max_length=ID_MAX)
        schema.add_field(TEXT, DataType.VARCHAR, max_length=TEXT_MAX)
        schema.add_field(SOURCE, DataType.VARCHAR, max_length=SOURCE_MAX)
        schema.add_field(METADATA, DataType.JSON)
        if self.spec.partition_key:
            schema.add_field(self.spec.partition_key, DataType.VARCHAR, max_length=KEY_MAX, is_partition_key=True)
        schema.add_field(VECTOR, DataType.FLOAT_VECTOR, dim=self.spec.dimension)
        return schema

    def create(self) -> None:
        s, t = self.spec, self.timeout
        kwargs: dict[str, Any] = {"num_shards": s.shards, "consistency_level": "Bounded"}
        if s.partition_key:
            kwargs["num_partitions"] = s.num_partitions
        with translated():
            self.client.create_collection(
                s.name, schema=self._schema(), timeout=t, properties={PROP_SHARDS: str(s.shards), PROP_MANAGED: "agentfleet"}, **kwargs
            )

    def ensure_partitions(self) -> tuple[str, ...]:
        """Create named partitions the spec lists; extra partitions are kept (dropping loses data)."""
        if self.spec.partition_key or not self.spec.partitions:
            return ()
        with translated():
            have = set(self.client.list_partitions(self.spec.name, timeout=self.timeout))
            new = tuple(p for p in self.spec.partitions if p not in have)
            for p in new:
                self.client.create_partition(self.spec.name, p, timeout=self.timeout)
        return new

    def _index_params(self) -> Any:
        ip = self.client.prepare_index_params()
        ip.add_index(
            field_name=VECTOR, index_name=INDEX_NAME, index_type=self.spec.index_type, metric_type=self.spec.metric, params=dict(self.spec.index_params)
        )
        return ip

    def ensure_index(self, state: CollectionState) -> bool:
        """Build the index, or drop and rebuild it when type/params/metric changed. Rows are kept."""
        if index_up_to_date(self.spec, state):
            return False
        name, t = self.spec.name, self.timeout
        with translated():
            if state.index_type is not None:
                # Milvus refuses to drop the index of a loaded collection.
                if state.load_state in ("Loaded", "Loading"):
                    self.client.release_collection(name, timeout=t)
                self.client.drop_index(name, INDEX_NAME, timeout=t)
            self.client.create_index(name, self._index_params(), timeout=t)
            self.client.alter_collection_properties(name, properties={PROP_INDEX: self.spec.index_record()}, timeout=t)
        return True

    def ensure_loaded(self, *, wait: bool = False) -> bool:
        """Load with the spec's replica number; reload (release + load) when the number differs.

        With ``wait`` False the load is started and the call returns; describe() then reports
        Loading and its progress, so a controller never blocks on a large collection.
        """
        name, t, n = self.spec.name, self.timeout, self.spec.replicas
        state = self.describe()
        if state.load_state == "Loading":
            return False
        if state.load_state == "Loaded" and state.replicas == n:
            return False
        with translated():
            if state.load_state == "Loaded":
                self.client.release_collection(name, timeout=t)
            self.client.load_collection(name, replica_number=n, timeout=None if wait else t, _async=not wait)
            self.client.alter_collection_properties(name, properties={PROP_REPLICAS: str(n)}, timeout=t)
        return True

    def ensure(self, *, wait_loaded: bool = False) -> Reconciled:
        """Create or update the collection to match the spec, then describe it.

        Raises ImmutableFieldConflict before changing anything when the existing collection
        has another dimension, shard count or partition key.
        """
        notes: list[str] = []
        state = self.describe()
        created = False
        if not state.exists:
            self.create()
            created = True
            state = self.describe()
        else:
            conflicts = immutable_conflicts(self.spec, state)
            if conflicts:
                raise ImmutableFieldConflict(self.spec.name, conflicts)
        if state.shards is not None and state.shards != self.spec.shards:
            notes.append(f"Milvus reports {state.shards} shard(s) for {self.spec.shards} requested (Milvus Lite keeps one shard)")
        partitions = self.ensure_partitions()
        rebuilt = self.ensure_index(state)
        reloaded = self.ensure_loaded(wait=wait_loaded)
        final = self.describe()
        if not final.replicas_reported and final.load_state == "Loaded":
            notes.append("this Milvus does not describe replicas; inMemoryReplicas shows the replica number requested at load")
        return Reconciled(final, created, rebuilt and not created, reloaded and not created, partitions, tuple(notes))

    def drop(self) -> bool:
        """Drop the collection (deletionPolicy Delete). False when it did not exist."""
        with translated():
            if not self.client.has_collection(self.spec.name, timeout=self.timeout):
                return False
            self.client.drop_collection(self.spec.name, timeout=self.timeout)
            return True

    def prune_revisions(self, keep: str) -> None:
        """Delete chunks written by other ingestion revisions (documents since changed or removed).

        Call after a revision's Job succeeded: its workers tagged every chunk they upserted.
        """
        expr = f'{METADATA}["revision"] != {json.dumps(keep)}'
        with translated():
            self.client.delete(self.spec.name, filter=expr, timeout=self.timeout)


# --- Writing rows (ingestion) ----------------------------------------------------------------------


class MilvusSink:
    """Upserts chunk rows in batches, retrying while Milvus is briefly unavailable."""

    def __init__(self, client: Any, collection: str, *, timeout: float = 60.0, attempts: int = 6, sleep: Callable[[float], None] = time.sleep) -> None:
        self.client = client
        self.collection = collection
        self.timeout = timeout
        self.attempts = attempts
        self._sleep = sleep

    @classmethod
    def connect(cls, target: MilvusTarget, collection: str) -> MilvusSink:
        sink = cls(with_retries(lambda: target.connect()), collection)
        with translated():
            if not sink.client.has_collection(collection, timeout=target.timeout):
                raise MilvusRequestError(f"collection {collection!r} does not exist in database {target.database!r}: the operator creates it before ingestion")
        return sink

    def describe_dimension(self) -> int | None:
        with translated():
            for f in self.client.describe_collection(self.collection).get("fields", []):
                if f.get("name") == VECTOR:
                    return _num((f.get("params") or {}).get("dim"))
        return None

    def partition_key(self) -> str | None:
        with translated():
            for f in self.client.describe_collection(self.collection).get("fields", []):
                if f.get("is_partition_key"):
                    return str(f["name"])
        return None

    def upsert(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            with_retries(lambda: self.client.upsert(self.collection, rows, timeout=self.timeout), attempts=self.attempts, sleep=self._sleep)
