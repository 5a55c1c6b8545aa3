"""The AgentFleet controller: the agent runtime, its config and Redis, wired to the referenced
ModelReplicaSet(s) and VectorIndex.

Passes come from events on AgentFleets, on their Deployments and StatefulSets, on the
ModelReplicaSets, VectorIndexes, ConfigMaps and Secrets they refer to
(agentfleet.handlers.agentfleet), and from a periodic resync (which also refreshes the task
statistics read from the fleet's Redis with a short timeout). One pass is an AgentFleetPass
(reconcile.py) in the framework's four steps; what the controller remembers of a fleet between
passes is what it refers to, so that a change there wakes it, and the Redis identity it recorded
in its status (status.redis), which the other fleets' passes compare theirs with (sharing.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from agentfleet_contract.agentfleet import AgentFleetSpec, RedisIdentity
from agentfleet_contract.common import API_VERSION
from pydantic import ValidationError

from agentfleet.controllers.agentfleet.deciding import mounted_refs
from agentfleet.controllers.agentfleet.probe import probe_fleet_redis
from agentfleet.controllers.agentfleet.reconcile import AgentFleetPass, SecretRaced
from agentfleet.controllers.agentfleet.records import BACKOFF_MAX, BACKOFF_MIN, KIND
from agentfleet.controllers.agentfleet.services import Probe
from agentfleet.controllers.settings import CONFIG
from agentfleet.kube import Kube
from agentfleet.reconcile.controller import Controller, Key
from agentfleet.reconcile.events import EventRecorder, post_with_kube


def references(spec: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(kind, name) of what an AgentFleet spec refers to."""
    out: set[tuple[str, str]] = set()
    for field, kind in (
        ("modelRef", "ModelReplicaSet"),
        ("routineModelRef", "ModelReplicaSet"),
        ("vectorIndexRef", "VectorIndex"),
    ):
        name = (spec.get(field) or {}).get("name")
        if name:
            out.add((kind, name))
    sp = (spec.get("systemPrompt") or {}).get("configMapRef") or {}
    if sp.get("name"):
        out.add(("ConfigMap", sp["name"]))
    password = ((spec.get("redis") or {}).get("passwordSecretRef") or {}).get("name")
    if password:
        out.add(("Secret", password))
    # Every Secret the pods mount, from the list decide checks consent on (deciding.mounted_refs):
    # one created or labelled after the fleet (cert-manager issues a certificate later) wakes the
    # fleet at once, not at the next resync.
    try:
        typed = AgentFleetSpec.model_validate(dict(spec))
    except ValidationError:
        return out  # decide refuses the spec; fixing it is a spec change, which comes back here
    out.update(("Secret", ref.name) for _, ref in mounted_refs(typed))
    return out


@dataclass
class AgentFleetState:
    """What the controller remembers of one AgentFleet: what it refers to, so that a change of a
    ModelReplicaSet, VectorIndex, ConfigMap or Secret wakes the fleets that use it."""

    refs: set[tuple[str, str]] = dataclasses.field(default_factory=set)
    redis: RedisIdentity | None = None  # status.redis as last seen on the watch


class AgentFleetController(Controller[AgentFleetState]):
    api_version, kind, name = API_VERSION, KIND, "agentfleet"
    steps: ClassVar[tuple[type, ...]] = (AgentFleetPass,)

    def __init__(
        self, kube: Kube, events: EventRecorder | None = None, *, workers: int = 4, probe: Probe = probe_fleet_redis
    ) -> None:
        super().__init__(
            kube,
            events or EventRecorder(post_with_kube(kube)),
            workers=workers,
            resync=CONFIG.resync_seconds,
            backoff=(BACKOFF_MIN, BACKOFF_MAX),
            quiet=(SecretRaced,),
        )
        self.probe = probe

    def new_state(self) -> AgentFleetState:
        return AgentFleetState()

    def observe_spec(self, key: Key, spec: Mapping[str, Any]) -> None:
        self.state(key).refs = references(spec)

    def observe_status(self, key: Key, status: Mapping[str, Any]) -> list[Key]:
        """Keeps the fleet's recorded Redis identity; when it changed, the fleets on the server it
        left or joined, which should compare again now rather than at their next resync."""
        try:
            now = RedisIdentity.model_validate(status["redis"]) if status.get("redis") else None
        except ValidationError:
            now = None  # not the operator's writing: compared with nothing
        st = self.state(key)
        before, st.redis = st.redis, now
        if before == now:
            return []
        servers = {i.server_id for i in (before, now) if i is not None}
        return [k for k, o in self.states() if k != key and o.redis is not None and o.redis.server_id in servers]  # type: ignore[misc]

    def neighbours(self, key: Key) -> dict[Key, RedisIdentity]:
        """The Redis identities the other fleets recorded, by (namespace, name)."""
        return {k: st.redis for k, st in self.states() if k != key and st.redis is not None}  # type: ignore[misc]

    def referring(self, namespace: str, kind: str, name: str) -> list[Key]:
        return [k for k, st in self.states() if k[0] == namespace and (kind, name) in st.refs]  # type: ignore[index]

    def reconcile(self, key: Key, _: Any) -> float | None:
        obj = self.fetch(key)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return None
        return AgentFleetPass(
            self.kube, self.events, obj, probe=self.probe, neighbours=lambda: self.neighbours(key)
        ).run()
