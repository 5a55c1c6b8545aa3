"""Writing rows (ingestion workers)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from agentfleet_milvus.connection import MilvusTarget, with_retries
from agentfleet_milvus.errors import MilvusRequestError, translated
from agentfleet_milvus.schema import VECTOR, number

# --- Writing rows (ingestion) ----------------------------------------------------------------------


class MilvusSink:
    """Upserts chunk rows in batches, retrying while Milvus is briefly unavailable."""

    def __init__(
        self,
        client: Any,
        collection: str,
        *,
        timeout: float = 60.0,
        attempts: int = 6,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
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
                raise MilvusRequestError(
                    f"collection {collection!r} does not exist in database {target.database!r}: the operator "
                    "creates it before ingestion"
                )
        return sink

    def describe_dimension(self) -> int | None:
        with translated():
            for f in self.client.describe_collection(self.collection).get("fields", []):
                if f.get("name") == VECTOR:
                    return number((f.get("params") or {}).get("dim"))
        return None

    def partition_key(self) -> str | None:
        with translated():
            for f in self.client.describe_collection(self.collection).get("fields", []):
                if f.get("is_partition_key"):
                    return str(f["name"])
        return None

    def upsert(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            with_retries(
                lambda: self.client.upsert(self.collection, rows, timeout=self.timeout),
                attempts=self.attempts,
                sleep=self._sleep,
            )
