"""The fleet's Redis as the operator reads it: a client (``redis://`` or ``redis+sentinel://``), the
probe (PING with the password, then the fleet's task figures and, for the AgentFleet pass, who the
server is and what the fleet's user reaches) and a hard bound on how long a pass waits for it."""

from __future__ import annotations

import concurrent.futures
import logging
import secrets
from typing import Any

from agentfleet_contract.agentfleet import RedisIdentity
from agentfleet_contract.fleet_stats import FleetStats
from agentfleet_contract.redis_sentinel import parse_sentinel_url

from agentfleet.controllers.agentfleet import sharing
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
    ok, error, stats, _ = _probe(url, password, fleet, timeout, namespace, identify=False)
    return ok, error, stats


def probe_fleet_redis(
    url: str, password: str | None, fleet: str, timeout: float = REDIS_TIMEOUT_SECONDS, namespace: str = ""
) -> tuple[bool, str, FleetStats | None, RedisIdentity | None]:
    """probe_redis, and then who the server is and what the fleet's user reaches (``identify``):
    the AgentFleet pass's probe. Asked only after PING with the fleet's password answered, so the
    operator never tells anyone about a Redis they cannot log in to."""
    return _probe(url, password, fleet, timeout, namespace, identify=True)


def _probe(
    url: str, password: str | None, fleet: str, timeout: float, namespace: str, *, identify: bool
) -> tuple[bool, str, FleetStats | None, RedisIdentity | None]:
    import redis
    from agentfleet_contract.fleet_stats import read_fleet_stats

    r = redis_client(url, password, timeout)
    try:
        r.ping()
    except redis.RedisError as e:
        return False, str(e) or type(e).__name__, None, None
    else:
        try:
            stats = read_fleet_stats(r, fleet, namespace=namespace)
        except redis.RedisError as e:
            log.debug("%s: stats unavailable: %s", fleet, e)
            stats = None
        who = None
        if identify and namespace:
            try:
                who = identify_redis(r, namespace, fleet)
            except redis.RedisError as e:
                log.info("%s/%s: the Redis did not say who it is: %.300s", namespace, fleet, e)
        return True, "", stats, who
    finally:
        r.close()


def _refused(call: Any) -> bool:
    """The command was refused by the user's ACL (NOPERM); anything else (an answer, READONLY, an
    unknown command) counts as allowed: where in doubt, the user reaches more."""
    import redis

    try:
        call()
    except redis.exceptions.NoPermissionError:
        return True
    except redis.ResponseError:
        return False
    return False


def _acl_keys(r: Any) -> list[str] | None:
    """The user's key patterns (its selectors' too) when it may read its own ACL; None when it may
    not (a confined user seldom may) or the server has no ACLs (before Redis 6: every key)."""
    import redis

    try:
        me = r.execute_command("ACL", "WHOAMI")
        user = r.acl_getuser(me)
    except redis.exceptions.NoPermissionError:
        return None
    except redis.ResponseError:
        return ["~*"]  # no ACL: the one user reaches every key
    if not user:
        return None
    if "allkeys" in (user.get("flags") or []):
        return ["~*"]

    def rules(v: Any) -> list[str]:
        return v.split() if isinstance(v, str) else [str(x) for x in v or []]

    keys = rules(user.get("keys"))
    for sel in user.get("selectors") or []:
        keys += rules(sel.get("keys") if isinstance(sel, dict) else None)
    return keys


def identify_redis(r: Any, namespace: str, fleet: str) -> RedisIdentity | None:
    """Who the server is (``INFO server`` run_id, as a digest; the database the URL selects) and what
    the fleet's user reaches. The keys: its own ACL's patterns where it may read them, else what it
    is refused: a read and a write of keys just outside its prefix (another fleet of its namespace,
    its name in another namespace, a key of no fleet) must each be refused with NOPERM. The probe
    keys end in a random suffix, so no existing key is read or deleted (DEL of a missing key changes
    nothing). SELECT of its own database refused: it stays in it."""
    run_id = (r.info("server") or {}).get("run_id")
    if not run_id:
        return None
    db = int(r.connection_pool.connection_kwargs.get("db") or 0)
    prefix = sharing.own_prefix(namespace, fleet)
    patterns = _acl_keys(r)
    if patterns is not None:
        confined = sharing.patterns_confined(patterns, prefix)
    else:
        tag = secrets.token_hex(8)
        outside = (f"af:{namespace}/{fleet}-{tag}:probe", f"af:{namespace}-{tag}/{fleet}:probe", f"agentfleet-{tag}")
        confined = all(
            _refused(lambda k=k: r.execute_command("EXISTS", k)) and _refused(lambda k=k: r.execute_command("DEL", k))
            for k in outside
        )
    may_select = not _refused(lambda: r.execute_command("SELECT", db))
    reach = sharing.reach_of(keys_confined=confined, may_select=may_select)
    return RedisIdentity(server_id=sharing.server_id(str(run_id)), db=db, reach=reach)


def probe_within(probe: Probe, url: str, password: str | None, fleet: str, namespace: str) -> ProbeResult:
    """``probe`` with a hard bound on top of the socket timeouts: a name lookup (a managed Redis's
    Service seen from outside the cluster, a resolver that does not answer) is not covered by them.
    The fleet's keys hold its namespace (af:<namespace>/<fleet>:): the figures are read there.
    A probe may answer the identity too (probe_fleet_redis) or not (probe_redis: None)."""
    future = _PROBES.submit(probe, url, password, fleet, REDIS_TIMEOUT_SECONDS, namespace)
    try:
        ok, error, stats, *more = future.result(timeout=REDIS_TIMEOUT_SECONDS * 3)
    except concurrent.futures.TimeoutError:
        ok, error, stats, more = False, f"no answer within {REDIS_TIMEOUT_SECONDS * 3:g}s", None, []
    except Exception as e:  # noqa: BLE001 - statistics are best effort; a pass must finish
        ok, error, stats, more = False, f"{type(e).__name__}: {e}", None, []
    return ProbeResult(ok, error, stats, more[0] if ok and more else None)
