"""Where a collection lives and how calls to it are retried."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agentfleet_milvus.errors import MilvusRequestError, MilvusUnavailable, translated
from agentfleet_milvus.schema import DEFAULT_TIMEOUT

log = logging.getLogger("agentfleet_milvus")

# --- Connection --------------------------------------------------------------------------------

# pymilvus's channel pings every 10 s, idle or not. A gRPC server on grpc's defaults, Milvus Lite's
# among them (pymilvus also starts one for a ``.db`` URI, the embedded default), accepts a ping with
# no call in flight at most every 5 minutes: after the third early one it answers GOAWAY
# too_many_pings, and the call then starting on that connection fails UNAVAILABLE (a client that sat
# 40 s idle, then a VectorIndex's status read "MilvusUnavailable"). So an idle channel sends no pings,
# and a call in flight is pinged every 330 s: past those servers' 5 minutes, under the 350 s a cloud
# load balancer keeps an idle flow. Milvus standalone accepts either. A dead idle connection shows at
# the next call's deadline, which ``with_retries`` retries.
CHANNEL_OPTIONS: dict[str, int | bool] = {
    "grpc.keepalive_permit_without_calls": False,
    "grpc.keepalive_time_ms": 330_000,
}


@dataclass(frozen=True)
class MilvusTarget:
    """Where the collection lives. ``token`` is "user:password" or an API key."""

    uri: str
    database: str = "default"
    user: str = ""
    password: str = ""
    token: str = ""
    timeout: float = DEFAULT_TIMEOUT

    def _client(self, database: str) -> Any:
        from pymilvus import MilvusClient

        # dedicated: pymilvus otherwise shares one channel per address across clients, and a
        # shared channel that went idle is re-dialled with the timeout of whichever client
        # created it first, not ours. db_name, not use_database: use_database asks DescribeDatabase,
        # which Milvus before 2.4 does not have (UNIMPLEMENTED).
        return MilvusClient(
            uri=self.uri,
            user=self.user,
            password=self.password,
            token=self.token,
            db_name="" if database == "default" else database,
            timeout=self.timeout,
            dedicated=True,
            grpc_options=CHANNEL_OPTIONS,
        )

    def connect(self, *, create_database: bool = False) -> Any:
        """A MilvusClient on ``database``; with ``create_database`` the database is created if missing.

        Anything that goes wrong before the server has shown it is Milvus (refused, timed out, or a
        gRPC server that answers UNIMPLEMENTED) is MilvusUnavailable: one fixed text for all of them."""
        with translated(before_milvus=True):
            client = self._client("default")
            if self.database and self.database != "default":
                if self.database not in client.list_databases(timeout=self.timeout):
                    if not create_database:
                        raise MilvusRequestError(
                            f"database {self.database!r} does not exist in Milvus at {self.uri}",
                            public=f"database {self.database!r} does not exist in this Milvus: "
                            "create it, or set spec.milvus.database to an existing one",
                        )
                    client.create_database(self.database, timeout=self.timeout)
                client.close()
                client = self._client(self.database)
            return client

    def session(self, *, create_database: bool = False) -> tuple[Any, tuple[int, int, int] | None]:
        """(client on ``database``, the server's version as ``server_version`` reads it): the version
        is read once per connection, here; a server that cannot say its version is not Milvus."""
        client = self.connect(create_database=create_database)
        with translated(before_milvus=True):
            return client, parse_version(str(client.get_server_version(timeout=self.timeout)))


def server_version(client: Any, timeout: float = DEFAULT_TIMEOUT) -> tuple[int, int, int] | None:
    """The version a client's server reports (``parse_version``)."""
    with translated():
        return parse_version(str(client.get_server_version(timeout=timeout)))


def parse_version(text: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of "v2.3.5-lite"; None for Milvus Lite ("milvus_lite-3.2.2": not Milvus'
    numbering, and it has BM25 and hybrid search) or anything unparseable."""
    m = _VERSION.match(text.strip())
    return (int(m[1]), int(m[2]), int(m[3] or 0)) if m else None


_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


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
