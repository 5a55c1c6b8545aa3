"""AgentFleet children: the worker pods' egress NetworkPolicy (what tools and prompts may not reach).

Pure; agentfleet.render.agentfleet re-exports it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from agentfleet_contract.agentfleet import AgentFleet

from agentfleet.render.agentfleet_names import _fleet, _meta, selector, worker_egress_name
from agentfleet.render.common import RenderError

# Cloud metadata services (AWS, GCP, Azure: 169.254.169.254; AWS over IPv6: fd00:ec2::254): the
# node's credentials live there. The chart's workerEgress.deniedCIDRs replaces this default.
DEFAULT_EGRESS_DENY = ("169.254.0.0/16", "fd00:ec2::254/128")


@dataclass(frozen=True)
class Egress:
    """Addresses the workers may not reach, from the operator's settings (the chart's workerEgress)."""

    denied: tuple[str, ...] = DEFAULT_EGRESS_DENY
    # The API server's own addresses (a NetworkPolicy sees them after the Service IP is translated).
    api_server: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for entry in (*self.denied, *self.api_server):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as e:
                raise RenderError(f"workerEgress: {entry!r} is not an IP address or CIDR") from e


def _except(cidrs: list[str], version: int) -> list[str]:
    nets = (ipaddress.ip_network(c, strict=False) for c in cidrs)
    return sorted({str(n) for n in nets if n.version == version})


def render_worker_egress(af: AgentFleet, egress: Egress) -> dict[str, Any]:
    """The workers' egress NetworkPolicy: anywhere but the denied ranges, and the API server's
    addresses too unless spec.workers.allowAPIServer. Tools and prompts come from fleet authors
    and models, so what a worker can reach is what a prompt injection can reach."""
    fleet, _ = _fleet(af)
    denied = [*egress.denied, *(() if af.spec.workers.allow_api_server else egress.api_server)]
    blocks = []
    for cidr, version in (("0.0.0.0/0", 4), ("::/0", 6)):
        block: dict[str, Any] = {"cidr": cidr}
        if ex := _except(denied, version):
            block["except"] = ex
        blocks.append({"ipBlock": block})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(af, worker_egress_name(fleet), "worker"),
        "spec": {
            "podSelector": {"matchLabels": selector(fleet, "worker")},
            "policyTypes": ["Egress"],
            # Pods (DNS, Redis, replicas, Milvus) by selector as well: some CNIs (Cilium) match
            # only addresses outside the cluster with ipBlock. Host-network pods, the API server
            # among them, are not selected by it.
            "egress": [{"to": blocks}, {"to": [{"namespaceSelector": {}}]}],
        },
    }
