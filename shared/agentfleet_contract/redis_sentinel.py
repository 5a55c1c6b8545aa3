"""The one way a Sentinel-managed Redis is named between the operator and the runtime: a URL
``redis+sentinel://host:port,host:port/<master name>/<db>`` in the runtime config's redisUrl, so a
fleet's config has one Redis field whichever kind it is (agentfleet_runtime.store.connection opens it,
the operator's probe too)."""

from __future__ import annotations

from dataclasses import dataclass

SCHEME = "redis+sentinel://"


@dataclass(frozen=True)
class SentinelTarget:
    addresses: tuple[tuple[str, int], ...]
    master: str
    db: int = 0


def sentinel_url(addresses: list[str], master: str, db: int = 0) -> str:
    return f"{SCHEME}{','.join(addresses)}/{master}/{db}"


def parse_sentinel_url(url: str) -> SentinelTarget | None:
    """The Sentinels, master name and database of a redis+sentinel:// URL; None for another URL."""
    if not url.startswith(SCHEME):
        return None
    hosts, _, path = url[len(SCHEME) :].partition("/")
    master, _, db = path.partition("/")
    if not hosts or not master:
        raise ValueError(f"{url}: a Sentinel URL is redis+sentinel://host:port[,host:port...]/<master name>[/<db>]")
    addresses = []
    for entry in hosts.split(","):
        host, _, port = entry.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"{url}: {entry!r} is not host:port")
        addresses.append((host.strip("[]"), int(port)))
    return SentinelTarget(tuple(addresses), master, int(db) if db.isdigit() else 0)
