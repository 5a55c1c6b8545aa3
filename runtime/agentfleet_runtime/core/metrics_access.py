"""Who reads /metrics, on the task API and on every worker alike (spec.api.metricsAccess).

Hashed: anyone, with each tenant label replaced by an HMAC of the tenant's name under a key of
the fleet's own. An unsalted hash of a name reverses by guessing names ("acme" hashes the same in
every fleet); an HMAC needs the key, which lives in the fleet's Redis (created once, by whichever
pod starts first, so the API and the workers label a tenant alike). Token: a bearer token of the
API (the workers read the same tokens file). Open: anyone, with tenant names.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Any

from agentfleet_contract.fleet_keys import Keys

TENANT_LABEL = re.compile(r'tenant="([^"\\]*)"')  # tenant names are TENANT_NAME: no quotes or escapes


def label_key_name(keys: Keys) -> str:
    """The Redis key of the fleet's tenant-label key."""
    return f"{keys.prefix}metrics-label-key"


async def label_key(redis: Any, keys: Keys) -> bytes:
    """The fleet's tenant-label key: created once (SET NX) with 32 random bytes, then read."""
    name = label_key_name(keys)
    await redis.set(name, secrets.token_hex(32), nx=True)
    value = await redis.get(name)
    return value.encode() if isinstance(value, str) else bytes(value)


def hash_tenants(exposition: bytes, key: bytes) -> bytes:
    """Metrics text with every tenant label value replaced by an HMAC of it under ``key``: the
    series stay per tenant (dashboards, alerts) but a scrape names no tenant, nor lets one guess."""

    def hashed(m: re.Match[str]) -> str:
        return f'tenant="t-{hmac.new(key, m.group(1).encode(), hashlib.sha256).hexdigest()[:16]}"'

    return TENANT_LABEL.sub(hashed, exposition.decode()).encode()
