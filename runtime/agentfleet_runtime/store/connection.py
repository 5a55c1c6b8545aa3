"""The Redis client every runtime process uses: a bounded, retrying pool with a fast packer.

``connect`` is the only way the runtime opens Redis; ``TaskStore`` (store.py) and the routing
state share what it returns.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from agentfleet_contract.redis_sentinel import parse_sentinel_url
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, ReadOnlyError
from redis.exceptions import TimeoutError as RedisTimeoutError

try:  # hiredis's C packer; redis-py's pure-Python one was a large share of a checkpoint's CPU
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover - hiredis is a dependency; stay correct without it
    _hiredis_pack = None


class _FastConnection(aioredis.Connection):
    def pack_command(self, *args: Any) -> list[bytes]:
        if _hiredis_pack is None:
            return super().pack_command(*args)
        if isinstance(args[0], str) and " " in args[0]:  # "CONFIG GET" is two words on the wire
            args = (*args[0].split(), *args[1:])
        return [_hiredis_pack(args)]

    def pack_commands(self, commands: Any) -> list[bytes]:
        # One buffer for a whole pipeline or script batch (batch.py): redis-py's version re-chunks
        # the packed commands in Python, a visible cost with hundreds of checkpoints per batch.
        if _hiredis_pack is None:
            return super().pack_commands(commands)
        return [b"".join([self.pack_command(*args)[0] for args in commands])]


class _SentinelConnection(_FastConnection):
    """A connection that asks the Sentinels where the primary is each time it (re)connects, so
    the pool's retries follow a failover. (redis-py's own Sentinel pool did not: after a kill -9
    of the primary its reconnect hung on the old address, seen with redis-py 8.1.)"""

    def __init__(self, *, sentinel: Sentinel, master: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sentinel = sentinel
        self._master = master

    async def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True) -> None:
        if not self.is_connected:
            # MasterNotFoundError (a ConnectionError) while the Sentinels agree on none: retried.
            self.host, self.port = await self._sentinel.discover_master(self._master)
        # No retry at this level: each retry (the caller's) must come back here and ask again.
        await super().connect_check_health(check_health=check_health, retry_socket_connect=False)


def connect(url: str, password: str | None = None, max_connections: int = 128) -> aioredis.Redis:
    """A client that rides out a Redis restart and shares a bounded pool of connections.

    Connection errors are retried for ~30 s; retrying writes is safe because every state change
    is a script that is idempotent per step number (see lua.py). The pool blocks when all its
    connections are busy instead of opening one per task: a worker with 1000 tasks in flight
    needs a few dozen connections, not a thousand.
    """
    target = parse_sentinel_url(url)
    # A demoted primary answers writes with READONLY: with Sentinel, drop the connection and ask
    # again (retries disconnect first); without it, READONLY is an answer for the caller.
    errors = (
        RedisConnectionError,
        RedisTimeoutError,
        ConnectionRefusedError,
        OSError,
        *((ReadOnlyError,) if target else ()),
    )
    retry = Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=25, supported_errors=errors)
    settings: dict[str, Any] = {
        "max_connections": max_connections,
        "timeout": 120,  # an overloaded worker waits for a connection rather than failing tasks
        "password": password,
        "decode_responses": True,
        "retry": retry,
        "retry_on_error": list(errors),
        "socket_timeout": 30,
        "socket_connect_timeout": 5,
        "health_check_interval": 30,
    }
    if target is not None:
        sentinel = Sentinel(list(target.addresses), sentinel_kwargs={"socket_timeout": 2, "socket_connect_timeout": 2})
        pool = BlockingConnectionPool(
            connection_class=_SentinelConnection, sentinel=sentinel, master=target.master, db=target.db, **settings
        )
        return aioredis.Redis(connection_pool=pool)
    pool = aioredis.BlockingConnectionPool.from_url(
        url, **settings, **({"connection_class": _FastConnection} if url.startswith("redis://") else {})
    )
    return aioredis.Redis(connection_pool=pool)


# Redis refusing writes for a reason that passes: full at maxmemory (noeviction), or a replica
# (a Sentinel failover is promoting another). Callers answer 503 with Retry-After, not 500.
UNWRITABLE = (OutOfMemoryError, ReadOnlyError)


async def full_reason(r: aioredis.Redis) -> str | None:
    """Why Redis refuses writes for want of memory, or None. INFO memory's used_memory against
    maxmemory under noeviction is the test Redis itself applies (less its replication buffers)."""
    info = await r.info("memory")
    limit, used = int(info.get("maxmemory") or 0), int(info.get("used_memory") or 0)
    if limit and used >= limit and info.get("maxmemory_policy") == "noeviction":
        return (
            f"redis is full: {used} bytes used of maxmemory {limit} (noeviction); writes are refused until tasks "
            "expire or memory is raised"
        )
    return None
