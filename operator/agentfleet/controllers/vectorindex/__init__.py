"""The VectorIndex controller, by responsibility:

- records.py     the typed records the steps hand on (Observed, Plan, Acted), the per-object state,
                 the pure timing rules (rows_due, index_check_due, next_busy_delay)
- services.py    the Protocols of what a pass uses of its controller and the API
- reconcile.py   one pass in the framework's four steps: observe, decide, act, write
- deciding.py    the decide step, pure: refusals, the managed Milvus, the ingestion (a typed Plan)
- status.py      what write reports, composed without I/O (status, conditions, Events)
- controller.py  the Controller: work queue, per-object state, dropping the collection on delete
"""

from agentfleet_milvus import CollectionManager

from agentfleet.controllers.vectorindex.controller import VectorIndexController
from agentfleet.controllers.vectorindex.reconcile import VectorIndexPass
from agentfleet.controllers.vectorindex.records import (
    BUSY_RESYNC_MAX_SECONDS,
    BUSY_RESYNC_SECONDS,
    CLAIM_RECHECK_SECONDS,
    DETAIL_MAX_AGE_SECONDS,
    INGESTED,
    KIND,
    MILVUS_READY,
    MILVUS_UNREACHABLE,
    PLURAL,
    MilvusNotReady,
    RowCount,
    SecretRefused,
    VectorIndexState,
    index_check_due,
    next_busy_delay,
    rows_due,
)

__all__ = [
    "BUSY_RESYNC_MAX_SECONDS",
    "BUSY_RESYNC_SECONDS",
    "CLAIM_RECHECK_SECONDS",
    "CollectionManager",
    "DETAIL_MAX_AGE_SECONDS",
    "INGESTED",
    "KIND",
    "MILVUS_READY",
    "MILVUS_UNREACHABLE",
    "PLURAL",
    "MilvusNotReady",
    "RowCount",
    "SecretRefused",
    "VectorIndexController",
    "VectorIndexPass",
    "VectorIndexState",
    "index_check_due",
    "next_busy_delay",
    "rows_due",
]
