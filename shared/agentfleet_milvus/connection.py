"""Where a collection lives and how calls to it are retried."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentfleet_milvus.errors import MilvusRequestError, MilvusUnavailable, translated
from agentfleet_milvus.schema import DEFAULT_TIMEOUT

log = logging.getLogger("agentfleet_milvus")

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
            client = MilvusClient(
                uri=self.uri,
                user=self.user,
                password=self.password,
                token=self.token,
                timeout=self.timeout,
                dedicated=True,
            )
            if self.database and self.database != "default":
                if self.database not in client.list_databases(timeout=self.timeout):
                    if not create_database:
                        raise MilvusRequestError(f"database {self.database!r} does not exist in Milvus at {self.uri}")
                    client.create_database(self.database, timeout=self.timeout)
                client.use_database(self.database)
            return client


def with_retries(
    call: Callable[[], Any],
    *,
    attempts: int = 6,
    first_delay: float = 0.5,
    max_delay: float = 15.0,
    sleep: Callable[[float], None] = time.sleep,
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
