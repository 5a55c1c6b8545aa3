"""Replica names: `<mrs>-<spec-hash[:5]>-<ordinal>`, recomputed from what exists (lowest free
ordinal), so an operator restarted in the middle of a scale-up re-derives the very names it was
creating and never makes a duplicate."""

from __future__ import annotations

import re
from collections.abc import Iterable

HASH_IN_NAME = 5


def replica_name(mrs: str, spec_hash: str, ordinal: int) -> str:
    return f"{mrs}-{spec_hash[:HASH_IN_NAME]}-{ordinal}"


def parse_replica_name(mrs: str, name: str) -> tuple[str, int] | None:
    """(hash prefix, ordinal) of a replica name of this ModelReplicaSet, or None."""
    m = re.fullmatch(re.escape(mrs) + rf"-([0-9a-f]{{{HASH_IN_NAME}}})-([0-9]+)", name)
    return (m.group(1), int(m.group(2))) if m else None


def new_replica_names(mrs: str, spec_hash: str, taken: Iterable[str], n: int) -> list[str]:
    """n names for new replicas: the lowest ordinals of this spec hash that no replica uses.

    `taken` holds every replica name that still exists in any form (record, pod, terminating pod):
    a name is reused only once the replica that had it is entirely gone."""
    used = set(taken)
    out: list[str] = []
    ordinal = 0
    while len(out) < n:
        name = replica_name(mrs, spec_hash, ordinal)
        if name not in used:
            out.append(name)
        ordinal += 1
    return out
