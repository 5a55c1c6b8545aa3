"""The fleet's Redis as the operator reads it: a client (``redis://`` or ``redis+sentinel://``), the
probe (PING with the password, then the fleet's task figures) and a hard bound on how long a pass
waits for it."""

from __future__ import annotations

import concurrent.futures
import logging
from typing import Any

from agentfleet_contract.fleet_stats import FleetStats
from agentfleet_contract.redis_sentinel import parse_sentinel_url

from agentfleet.controllers.agentfleet.records import REDIS_TIMEOUT_SECONDS, ProbeResult
from agentfleet.controllers.agentfleet.services import Probe

log = logging.getLogger("agentfleet.agentfleet")

# Redis probes run here so a pass can stop waiting for one; a stuck probe holds a thread, not a pass.
_PROBES = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="af-redis-probe")


def redis_client(
    url: str, password: str | None, timeout: float = REDIS_TIMEOUT_SECONDS, connect_timeout: float | None = None
) -> Any:
    """A synchronous redis-py client of a fleet's Redis (``redis://`` or ``redis+sentinel://``)."""
    import redis
    import redis.sentinel

    connect = timeout if connect_timeout is None else connect_timeout
    target = parse_sentinel_url(url)
    if target is not None:
        addresses = list(target.addresses)
        sentinel = redis.sentinel.Sentinel(addresses, socket_timeout=connect, socket_connect_timeout=connect)
        opts = {"password": password or None, "db": target.db, "decode_responses": True}
        return sentinel.master_for(target.master, socket_timeout=timeout, socket_connect_timeout=connect, **opts)
    opts = {"socket_timeout": timeout, "socket_connect_timeout": connect, "decode_responses": True}
    return redis.Redis.from_url(url, password=password or None, **opts)


def probe_redis(
    url: str, password: str | None, fleet: str, timeout: float = REDIS_TIMEOUT_SECONDS, namespace: str = ""
) -> tuple[bool, str, FleetStats | None]:
    """(reachable, error, FleetStats or None): PING with the password, then the fleet's figures.
    ``error`` is for the operator's log only (it may hold what the remote end answered)."""
    import redis
    from agentfleet_contract.fleet_stats import read_fleet_stats

    r = redis_client(url, password, timeout)
    try:
        r.ping()
    except redis.RedisError as e:
        return False, str(e) or type(e).__name__, None
    else:
        try:
            return True, "", read_fleet_stats(r, fleet, namespace=namespace)
        except redis.RedisError as e:
            log.debug("%s: stats unavailable: %s", fleet, e)
            return True, "", None
    finally:
        r.close()


def probe_within(probe: Probe, url: str, password: str | None, fleet: str, namespace: str) -> ProbeResult:
    """``probe`` with a hard bound on top of the socket timeouts: a name lookup (a managed Redis's
    Service seen from outside the cluster, a resolver that does not answer) is not covered by them.
    The fleet's keys hold its namespace (af:<namespace>/<fleet>:): the figures are read there."""
    future = _PROBES.submit(probe, url, password, fleet, REDIS_TIMEOUT_SECONDS, namespace)
    try:
        ok, error, stats = future.result(timeout=REDIS_TIMEOUT_SECONDS * 3)
    except concurrent.futures.TimeoutError:
        ok, error, stats = False, f"no answer within {REDIS_TIMEOUT_SECONDS * 3:g}s", None
    except Exception as e:  # noqa: BLE001 - statistics are best effort; a pass must finish
        ok, error, stats = False, f"{type(e).__name__}: {e}", None
    return ProbeResult(ok, error, stats)
