"""The writes a ModelReplicaSet pass makes on its replicas' pods once they exist: delete a replica
(forced on a node that is gone, where no kubelet confirms it), and the serving label that takes a
replica out of every Service of the set (drain) or puts it back (undrain). The rollout's step
(rolling.py), the judgment's deletions and the canary (canarying.py) all go through these."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from agentfleet.controllers.modelreplicaset.services import PassKube
from agentfleet.render.modelreplicaset import SERVING_LABEL
from agentfleet.replica_rollout import DRAINING_SINCE_ANNOTATION, ReplicaView, rfc3339


@dataclass(frozen=True)
class ReplicaPods:
    """One set's pods: ``ns`` is the set's namespace, ``now`` the pass's clock."""

    kube: PassKube
    ns: str
    now: float

    def delete(self, v: ReplicaView, force_nodes: Iterable[str] = ()) -> None:
        force = set(force_nodes)
        for p in v.pods:
            if p.deleting and p.node not in force:
                continue
            self.kube.delete("v1", "Pod", p.name, self.ns, force=p.node in force)

    def set_draining(self, v: ReplicaView, draining: bool) -> None:
        # Labels only (a merge patch): a pod's spec cannot change, and the serving label is what
        # every Service selects on. The annotation keeps the drain's start for a restarted operator.
        since = rfc3339(self.now, precise=True) if draining else None
        for p in v.live:
            if p.serving is None:
                continue
            self.kube.merge_patch_metadata(
                "v1",
                "Pod",
                p.name,
                self.ns,
                {SERVING_LABEL: "false" if draining else "true"},
                {DRAINING_SINCE_ANNOTATION: since},
            )
