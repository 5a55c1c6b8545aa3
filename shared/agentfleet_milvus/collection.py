"""CollectionManager: the Milvus calls of a collection: describe it; create it, add partitions, build
the index, load it (as planning.plan_collection decides, through carry_out); prune, drop."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentfleet_milvus.connection import MilvusTarget, with_retries
from agentfleet_milvus.errors import MilvusRequestError, MilvusUnavailable, translate, translated
from agentfleet_milvus.planning import CollectionPlan, DescribeIndex, IndexBuild, Load, notes, plan_collection
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
    number,
    recorded_index,
)

log = logging.getLogger("agentfleet_milvus")

# --- The manager --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reconciled:
    """What carry_out did, and the collection as it left it."""

    state: CollectionState
    created: bool = False
    index_rebuilt: bool = False
    reloaded: bool = False
    partitions_created: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    # Set when the server refused the spec's replica number: our fixed words for status (the
    # server's answer is in the log); the collection kept the replicas it had.
    replicas_refused: str | None = None


_LOAD_STATES: dict[str, LoadStateName | None] = {
    "NotExist": None,
    "NotLoad": "NotLoad",
    "Loading": "Loading",
    "Loaded": "Loaded",
}


class CollectionManager:
    """The Milvus calls of one collection (a CollectionSpec's): reads, and the primitives a
    CollectionPlan is carried out with. Every method raises only MilvusError subclasses."""

    def __init__(
        self,
        client: Any,
        spec: CollectionSpec,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        version: tuple[int, int, int] | None = None,
    ) -> None:
        self.client = client
        self.spec = spec
        self.timeout = timeout
        self.version = version  # the server's (MilvusTarget.session), None: Milvus Lite or unknown
        self._replicas_unsupported = False

    @classmethod
    def connect(cls, target: MilvusTarget, spec: CollectionSpec, *, attempts: int = 3) -> CollectionManager:
        """Connect (creating the database if missing) and read the server's version, once. A refused
        dial is retried briefly: gRPC channels can be mid-reconnect (e.g. after a server GOAWAY);
        longer outages raise MilvusUnavailable for the caller's own backoff."""
        client, version = with_retries(lambda: target.session(create_database=True), attempts=attempts)
        return cls(client, spec, timeout=target.timeout, version=version)

    # -- observe --

    def exists(self) -> bool:
        with translated():
            return bool(self.client.has_collection(self.spec.name, timeout=self.timeout))

    def describe(self, *, rows: bool = True, index: bool = True) -> CollectionState:
        """What the server says of the collection. ``rows`` / ``index`` False leave out the two
        observations that cost a pass over every row on some servers (Milvus Lite answers
        DescribeIndex, which list_indexes also sends, and GetCollectionStatistics by counting the
        live rows, and a count(*) query scans them): row_count stays None, and the index fields
        are our record of the index we built (``index_described`` False). The rest is metadata."""
        name, t = self.spec.name, self.timeout
        with translated():
            if not self.client.has_collection(name, timeout=t):
                return CollectionState(exists=False)
            desc = self.client.describe_collection(name, timeout=t)
            props = {str(k): str(v) for k, v in (desc.get("properties") or {}).items()}
            dim, pk = None, None
            for f in desc.get("fields", []):
                if f.get("name") == VECTOR:
                    dim = number((f.get("params") or {}).get("dim"))
                if f.get("is_partition_key"):
                    pk = f.get("name")
            analyzer = full_text_analyzer(desc)
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
            if not index:
                index_type, metric, index_params = recorded_index(props.get(PROP_INDEX))
            elif INDEX_NAME in (self.client.list_indexes(name, timeout=t) or []):
                idx = self.client.describe_index(name, INDEX_NAME, timeout=t) or {}
                index_type, metric = idx.get("index_type"), idx.get("metric_type")
                skip = {
                    "index_type",
                    "metric_type",
                    "field_name",
                    "index_name",
                    "total_rows",
                    "indexed_rows",
                    "pending_index_rows",
                    "state",
                    "params",
                }
                index_params = {k: v for k, v in idx.items() if k not in skip}
                nested = idx.get("params")
                if isinstance(nested, str):
                    with contextlib.suppress(ValueError):
                        nested = json.loads(nested)
                if isinstance(nested, Mapping):
                    index_params.update(nested)
            replicas, reported = self._replicas(props, load_state)
            row_count = self.count_rows(load_state) if rows else None
            partitions: tuple[str, ...] = ()
            if pk is None:
                partitions = tuple(sorted(self.client.list_partitions(name, timeout=t)))
        requested = props.get(PROP_SHARDS)
        return CollectionState(
            exists=True,
            row_count=row_count,
            load_state=load_state,
            load_progress=None if progress is None else int(progress),
            shards=number(desc.get("num_shards")),
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
            full_text_analyzer=analyzer,
            index_described=index,
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

    def count_rows(self, load_state: LoadStateName | None) -> int:
        """Live rows. Costs a pass over every row on Milvus Lite (and a query on any Milvus):
        a controller asks when something changed, not on every pass."""
        if load_state == "Loaded":
            # count(*) sees upserts and deletes exactly; the stats count rows not yet compacted away.
            res = self.client.query(
                self.spec.name, filter="", output_fields=["count(*)"], consistency_level="Strong", timeout=self.timeout
            )
            return int(res[0]["count(*)"])
        return int(self.client.get_collection_stats(self.spec.name, timeout=self.timeout).get("row_count", 0))

    # -- change --

    def _schema(self) -> Any:
        from pymilvus import DataType

        schema = self.client.create_schema(
            auto_id=False, enable_dynamic_field=False, description="agentfleet VectorIndex chunks"
        )
        schema.add_field(PRIMARY, DataType.VARCHAR, is_primary=True, max_length=ID_MAX)
        analyzer = self.spec.full_text_analyzer
        if analyzer is None:
            schema.add_field(TEXT, DataType.VARCHAR, max_length=TEXT_MAX)
        else:
            schema.add_field(
                TEXT, DataType.VARCHAR, max_length=TEXT_MAX, enable_analyzer=True, analyzer_params={"type": analyzer}
            )
        schema.add_field(SOURCE, DataType.VARCHAR, max_length=SOURCE_MAX)
        schema.add_field(METADATA, DataType.JSON)
        if self.spec.partition_key:
            schema.add_field(self.spec.partition_key, DataType.VARCHAR, max_length=KEY_MAX, is_partition_key=True)
        schema.add_field(VECTOR, DataType.FLOAT_VECTOR, dim=self.spec.dimension)
        if analyzer is not None:
            from pymilvus import Function, FunctionType

            # Milvus computes the BM25 term vector from ``text`` on every insert and from the
            # query text on every search: no second engine, no sparse encoder of our own.
            schema.add_field(SPARSE, DataType.SPARSE_FLOAT_VECTOR)
            bm25 = Function(
                name=BM25_FUNCTION,
                function_type=FunctionType.BM25,
                input_field_names=[TEXT],
                output_field_names=[SPARSE],
            )
            schema.add_function(bm25)
        return schema

    def create(self) -> None:
        s, t = self.spec, self.timeout
        kwargs: dict[str, Any] = {"num_shards": s.shards, "consistency_level": "Bounded"}
        if s.partition_key:
            kwargs["num_partitions"] = s.num_partitions
        with translated():
            self.client.create_collection(
                s.name,
                schema=self._schema(),
                timeout=t,
                properties={PROP_SHARDS: str(s.shards), PROP_MANAGED: "agentfleet"},
                **kwargs,
            )

    def create_partitions(self, names: tuple[str, ...]) -> tuple[str, ...]:
        with translated():
            for p in names:
                self.client.create_partition(self.spec.name, p, timeout=self.timeout)
        return names

    def _index_params(self, *, sparse: bool = False) -> Any:
        ip = self.client.prepare_index_params()
        ip.add_index(
            field_name=VECTOR,
            index_name=INDEX_NAME,
            index_type=self.spec.index_type,
            metric_type=self.spec.metric,
            params=self.spec.build_params(),
        )
        if sparse:
            ip.add_index(
                field_name=SPARSE, index_name=SPARSE_INDEX_NAME, index_type="SPARSE_INVERTED_INDEX", metric_type="BM25"
            )
        return ip

    def record_index(self) -> None:
        """Record the spec's index in the collection's properties (what describe(index=False) reads)."""
        with translated():
            self.client.alter_collection_properties(
                self.spec.name, properties={PROP_INDEX: self.spec.index_record()}, timeout=self.timeout
            )

    def build_index(self, build: IndexBuild) -> None:
        """Build the spec's index as ``build`` says (releasing and dropping first), then record it. Rows are kept."""
        name, t = self.spec.name, self.timeout
        with translated():
            if build.release:
                self.client.release_collection(name, timeout=t)
            if build.drop:
                self.client.drop_index(name, INDEX_NAME, timeout=t)
            sparse = build.sparse and SPARSE_INDEX_NAME not in (self.client.list_indexes(name, timeout=t) or [])
            self.client.create_index(name, self._index_params(sparse=sparse), timeout=t)
        self.record_index()

    def _query_nodes(self) -> int | None:
        """Query nodes the default resource group has now; None where the server cannot say."""
        try:
            info = self.client.describe_resource_group("__default_resource_group", timeout=self.timeout)
        except Exception as e:  # noqa: BLE001 - Milvus Lite has no resource groups
            if isinstance(translate(e), MilvusUnavailable):
                raise translate(e) from e
            return None
        n = getattr(info, "num_available_node", None)
        return int(n) if isinstance(n, int) else None

    def _load(self, n: int, wait: bool) -> None:
        name, t = self.spec.name, self.timeout
        self.client.load_collection(name, replica_number=n, timeout=None if wait else t, _async=not wait)
        self.client.alter_collection_properties(name, properties={PROP_REPLICAS: str(n)}, timeout=t)

    def _refused(self, n: int, had: int | None, why: str) -> str:
        log.warning("Milvus refused collection %s with %d replica(s): %s", self.spec.name, n, why)
        kept = f"it stays loaded with {had} replica(s)" if had else "it is not loaded"
        return (
            f"Milvus refused {n} in-memory replica(s) for collection {self.spec.name}: each replica needs a query "
            f"node of its own and there are too few; {kept}. Lower spec.inMemoryReplicas, or add query nodes"
        )

    def load(self, load: Load, *, wait: bool = False) -> tuple[bool, str | None]:
        """Load with ``load.replicas`` (releasing first when loaded with another number): whether a
        load was sent, and our words for status when the server refused the replica number.

        A replica number the server cannot hold (fewer query nodes than replicas) leaves the
        collection as it was, loaded with its replicas: refused before the release where the server
        says how many query nodes it has, else loaded again with the old number after the refusal.
        With ``wait`` False the load is started and the call returns; describe() then reports
        Loading and its progress, so a controller never blocks on a large collection."""
        n, had = load.replicas, load.loaded_with
        with translated():
            if n > 1:
                nodes = self._query_nodes()
                if nodes is not None and n > nodes:
                    return False, self._refused(n, had, f"{nodes} query node(s) available")
            if had is not None:
                self.client.release_collection(self.spec.name, timeout=self.timeout)
        try:
            with translated():
                self._load(n, wait)
        except MilvusRequestError as e:
            refused = self._refused(n, had, str(e))
            if had is None:
                return False, refused
            with translated():
                self._load(had, wait)
            return True, refused
        return True, None

    # -- the plan --

    def carry_out(
        self, plan: CollectionPlan, state: CollectionState, *, wait_loaded: bool = False, detail: bool = True
    ) -> Reconciled:
        """Make the Milvus calls of ``plan`` (planning.plan_collection of this spec and ``state``), in
        its order, then describe the collection again if anything changed (``detail``: as describe's
        ``rows`` and ``index``)."""
        if plan.create:
            self.create()
        partitions = self.create_partitions(plan.partitions)
        if plan.record_index:
            self.record_index()
        if plan.index is not None:
            self.build_index(plan.index)
        loaded, refused = self.load(plan.load, wait=wait_loaded) if plan.load is not None else (False, None)
        changed = plan.create or bool(partitions) or plan.index is not None or loaded
        final = self.describe(rows=detail, index=detail) if changed else state
        return Reconciled(
            final,
            plan.create,
            plan.index is not None and not plan.create,
            loaded and not plan.create and refused is None,
            partitions,
            notes(self.spec, final),
            refused,
        )

    def ensure(self, *, wait_loaded: bool = False, detail: bool = True) -> Reconciled:
        """Create or update the collection to match the spec, then describe it: describe,
        plan_collection, carry_out (the VectorIndex controller makes the same three in its observe,
        decide and act steps).

        Raises ImmutableFieldConflict or UnsupportedByServer before changing anything.

        ``detail`` False: no request that costs a pass over every row (see describe): the index
        is taken to be what our record says we built when that is what the spec asks (it is
        described when not), and the state's row_count is None. Describes once more only when
        something changed.
        """
        state = self.describe(rows=detail, index=detail)
        plan = plan_collection(self.spec, state, self.version)
        if isinstance(plan, DescribeIndex):
            state = self.describe(rows=False)
            plan = plan_collection(self.spec, state, self.version)
        if not isinstance(plan, CollectionPlan):
            raise plan
        return self.carry_out(plan, state, wait_loaded=wait_loaded, detail=detail)

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
