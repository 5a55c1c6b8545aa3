"""Moving a fleet's keys from ``af:<fleet>:`` to ``af:<namespace>/<fleet>:``.

Before the namespace was part of the key layout, two AgentFleets of one name in two namespaces on
one Redis shared every key (issue 57). A worker or API process of a fleet with a namespace moves
the old layout's keys to its own at start: RENAMENX, key by key, so nothing is overwritten and a
key that another process moved first is skipped. A stream keeps its consumer group and pending
entries through RENAME, a hash its fields, a set its members: queued, running, waiting and
finished tasks, sessions, idempotency keys and tenant counters all carry on.

Which fleet owns the old keys: the old layout cannot say (that was the hole), and the first
namespace to start a process must not decide it: a tenant who creates a fleet of the same name in
its own namespace first would take another's tasks, sessions and spend (issue 76). So a process
moves them only when its runtime document says the operator claims them for it (``legacyKeys``,
rendered for the fleets its administrator lists in AGENTFLEET_LEGACY_KEY_CLAIMS, the chart's
``legacyKeyClaims``); ``af:<fleet>:migrated`` then holds that namespace, and only that namespace
moves them, then and at every later start (a rolling update's old pods may still write a few).
Every other fleet of the name starts empty.
"""

from __future__ import annotations

import logging
from typing import Any

from agentfleet_contract.fleet_keys import Keys

log = logging.getLogger("agentfleet_runtime.store.migrate")

CLAIM_TTL_SECONDS = 30 * 86400  # long after every old pod of a rolling update has gone


def claim_key(keys: Keys) -> str:
    return keys.legacy_prefix + "migrated"


async def migrate_legacy_keys(r: Any, keys: Keys, batch: int = 500, *, claimed: bool = False) -> int:
    """Move the fleet's ``af:<fleet>:*`` keys under its namespaced prefix when the operator
    ``claimed`` them for it; the number moved."""
    if not keys.namespace or not claimed:
        return 0
    claim = claim_key(keys)
    await r.set(claim, keys.namespace, nx=True, ex=CLAIM_TTL_SECONDS)
    owner = await r.get(claim)
    if isinstance(owner, bytes):
        owner = owner.decode()
    if owner != keys.namespace:
        return 0  # another namespace's fleet of this name took the old keys
    moved = 0
    pattern = keys.legacy_prefix.replace("[", "\\[").replace("*", "\\*").replace("?", "\\?") + "*"
    async for raw in r.scan_iter(match=pattern, count=batch):
        old = raw.decode() if isinstance(raw, bytes) else raw
        if old == claim:
            continue
        new = keys.prefix + old[len(keys.legacy_prefix) :]
        try:
            moved += int(await r.renamenx(old, new))
        except Exception as e:  # moved by another process between SCAN and RENAMENX
            if "no such key" not in str(e).lower():
                raise
    if moved:
        log.warning(
            "moved the fleet's keys to the namespaced layout",
            extra={"fleet": keys.fleet, "namespace": keys.namespace, "keys": moved},
        )
    return moved
