"""Fleets sharing one external Redis (issue 76, row 76.6d), decided purely.

Two fleets' URLs may name one Redis under different aliases (a Service name and its ClusterIP, two
Services selecting one pod), so a URL says nothing: each fleet's own pass asks its Redis who it is
(``INFO server`` run_id, the database its URL selects) and what the fleet's user may touch
(``RedisReach``), and records that in its status (``status.redis``). A pass compares its fleet's
identity with the ones the other fleets recorded (the operator's watch carries them): it never
connects to another fleet's Redis.

A key prefix separates names, not access, and so does a database number (SELECT reaches every
database). Fleet B reaches fleet A's keys when both are on one server and B's user is not confined
to B's own keys: ``Server`` reaches every database, ``Database`` (SELECT refused) only its own.
Fleets where either reaches the other share trust, and each is warned. The managed Redis
(spec.redis.deploy) is one per fleet: never identified, never compared.

What a fleet's owner learns: that another fleet shares its Redis. The other fleet is named only when
it is in the same namespace; another namespace's is "a fleet in another namespace", without its
name, namespace or count: tenants never see each other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from agentfleet_contract.agentfleet import RedisIdentity, RedisReach

from agentfleet.controllers.agentfleet.records import REDIS_SHARED, Post, Verdict

FleetKey = tuple[str, str]  # (namespace, name)

SHARED = "SharedRedis"  # the Warning's reason, and RedisShared's when True


def server_id(run_id: str) -> str:
    """What status shows of a server's run_id: a digest, equal for one server. The run_id is no
    secret (anyone who may run INFO reads it), but status is copied into places (GitOps, support
    bundles) where a bare server id has no business; equality is all the comparison needs."""
    return hashlib.sha256(f"agentfleet redis server\n{run_id}".encode()).hexdigest()[:16]


def own_prefix(namespace: str, fleet: str) -> str:
    """The fleet's key prefix (agentfleet_contract.fleet_keys.Keys.prefix)."""
    return f"af:{namespace}/{fleet}:"


def _pattern(rule: str) -> str:
    """The glob of an ACL key rule: ``~glob``, ``%R~glob``, ``%W~glob``, ``%RW~glob``."""
    return rule.split("~", 1)[1] if "~" in rule else rule


def patterns_confined(rules: Iterable[str], prefix: str) -> bool:
    """Every key pattern of an ACL user (``ACL GETUSER``'s keys, its selectors' too) matches only
    keys under ``prefix``: the pattern starts with the prefix itself (a namespace or fleet name holds
    no glob character, so a literal start is the whole test). No pattern at all confines too."""
    return all(_pattern(r).startswith(prefix) for r in rules)


def reach_of(*, keys_confined: bool, may_select: bool) -> RedisReach:
    """The user's reach from what the probe saw."""
    if keys_confined:
        return "OwnKeys"
    return "Server" if may_select else "Database"


def reaches(who: RedisIdentity, whom: RedisIdentity) -> bool:
    """``who``'s user can read and write ``whom``'s keys (both on one server)."""
    if who.server_id != whom.server_id:
        return False
    return who.reach == "Server" or (who.reach == "Database" and who.db == whom.db)


@dataclass(frozen=True)
class Sharing:
    """The fleets that share trust with one fleet over its Redis, split by what its owner may see."""

    here: tuple[str, ...]  # fleets of the same namespace, by name
    elsewhere: bool  # at least one fleet of another namespace (never named)
    exposed: bool  # one of them reaches this fleet's keys
    reaching: bool  # this fleet's user reaches theirs


def sharing(me: FleetKey, mine: RedisIdentity, others: Mapping[FleetKey, RedisIdentity]) -> Sharing | None:
    """The fleets that share trust with ``me`` (None: none), from the identities they recorded."""
    here: set[str] = set()
    elsewhere = exposed = reaching = False
    for key, theirs in others.items():
        if key == me:
            continue
        into, out = reaches(theirs, mine), reaches(mine, theirs)
        if not (into or out):
            continue
        exposed, reaching = exposed or into, reaching or out
        if key[0] == me[0]:
            here.add(key[1])
        else:
            elsewhere = True
    if not here and not elsewhere:
        return None
    return Sharing(tuple(sorted(here)), elsewhere, exposed, reaching)


def message(me: FleetKey, s: Sharing) -> str:
    """What the condition and the Warning say: who, what it means, the fix."""
    who = []
    if s.here:
        who.append(f"fleet{'s' if len(s.here) > 1 else ''} {', '.join(s.here)} of this namespace")
    if s.elsewhere:
        who.append("a fleet in another namespace")
    how = []
    if s.exposed:
        how.append("their Redis users can read and write this fleet's keys")
    if s.reaching:
        how.append("this fleet's Redis user can read and write theirs")
    return (
        f"this fleet's Redis server is shared with {' and '.join(who)}; {' and '.join(how)}: fleets sharing a "
        "Redis share trust. Give each fleet its own Redis (spec.redis.deploy), or each fleet on it a Redis ACL user "
        f"confined to its own keys (this fleet's: {own_prefix(*me)}*) - docs/security.md, Fleets sharing one Redis"
    )


NOT_SHARED = Verdict(
    REDIS_SHARED,
    False,
    "NotShared",
    "no other fleet of this operator reaches this fleet's Redis keys, and this fleet's user reaches no other's",
)
MANAGED = Verdict(REDIS_SHARED, False, "ManagedRedis", "spec.redis.deploy: a Redis of this fleet alone")
UNKNOWN = Verdict(
    REDIS_SHARED,
    "Unknown",
    "NotIdentified",
    "the fleet's Redis did not say which server it is (unreachable, or INFO refused to the fleet's user)",
)


def judge(
    me: FleetKey, mine: RedisIdentity | None, others: Mapping[FleetKey, RedisIdentity], *, managed: bool
) -> tuple[Verdict, tuple[Post, ...]]:
    """RedisShared, and the Warning when the fleet shares trust over its Redis."""
    if managed:
        return MANAGED, ()
    if mine is None:
        return UNKNOWN, ()
    found = sharing(me, mine, others)
    if found is None:
        return NOT_SHARED, ()
    text = message(me, found)
    return Verdict(REDIS_SHARED, True, SHARED, text), (Post("Warning", SHARED, text),)
