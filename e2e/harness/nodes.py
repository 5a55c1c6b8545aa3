#!/usr/bin/env python3
"""Generate simulated (kwok-managed) Kubernetes Node objects from a topology file.

Usage:
    python3 e2e/harness/nodes.py [TOPOLOGY]            # prints a v1 List (JSON) of Nodes
    python3 e2e/harness/nodes.py [TOPOLOGY] --names    # prints one node name per line

TOPOLOGY defaults to $AGENTFLEET_TOPOLOGY or e2e/cluster/topology.yaml; see that file
for the format.  Importable: ``load_topology(path)`` and ``build_nodes(topo)``
are used by the e2e tests to know what the cluster should contain.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import re
import sys
from pathlib import Path

import yaml  # PyYAML; e2e/cluster/cluster.sh installs it when missing

HERE = Path(__file__).resolve().parent
DEFAULT_TOPOLOGY = HERE.parent / "cluster" / "topology.yaml"

# The kwok controller started by e2e/cluster/cluster.sh manages nodes with this annotation.
KWOK_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
SIMULATED_LABEL = "agentfleet.io/simulated"
POOL_LABEL = "agentfleet.io/node-pool"
NVLINK_LABEL = "agentfleet.io/nvlink-domain"
BLOCK_LABEL = "agentfleet.io/topology-block"
GPU_RESOURCE = "nvidia.com/gpu"

POOL_KEYS = {
    "name",
    "count",
    "namePrefix",
    "zone",
    "region",
    "topologyBlock",
    "nvlinkDomain",
    "instanceType",
    "cpu",
    "memory",
    "pods",
    "ephemeralStorage",
    "gpu",
    "labels",
    "annotations",
    "taints",
}
GPU_KEYS = {"count", "product", "memoryMiB", "family"}
TAINT_EFFECTS = {"NoSchedule", "PreferNoSchedule", "NoExecute"}
DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class TopologyError(ValueError):
    pass


def default_topology_path() -> Path:
    return Path(os.environ.get("AGENTFLEET_TOPOLOGY") or DEFAULT_TOPOLOGY)


def load_topology(path: str | os.PathLike | None = None) -> dict:
    path = Path(path) if path else default_topology_path()
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict) or not isinstance(data.get("pools"), list):
        raise TopologyError(f"{path}: expected a mapping with a 'pools' list")
    return data


def _merge(defaults: dict, pool: dict) -> dict:
    out = copy.deepcopy(defaults)
    for key, value in pool.items():
        if key in ("labels", "annotations") and isinstance(value, dict):
            out[key] = {**out.get(key, {}), **value}
        else:
            out[key] = copy.deepcopy(value)
    return out


def _fmt(value, ctx: dict) -> str:
    try:
        return str(value).format(**ctx)
    except (KeyError, IndexError, ValueError) as e:
        raise TopologyError(f"bad placeholder in {value!r}: {e}") from None


def build_nodes(topology: dict) -> list[dict]:
    """Expand a loaded topology into Node manifests (dicts), in file order."""
    defaults = topology.get("nodeDefaults") or {}
    nodes: list[dict] = []
    seen: set[str] = set()
    for i, raw in enumerate(topology["pools"]):
        if not isinstance(raw, dict):
            raise TopologyError(f"pools[{i}] is not a mapping")
        pool = _merge(defaults, raw)
        unknown = set(pool) - POOL_KEYS
        if unknown:
            raise TopologyError(f"pools[{i}]: unknown keys {sorted(unknown)}")
        name = pool.get("name")
        if not name or not DNS1123.match(str(name)):
            raise TopologyError(f"pools[{i}]: missing or invalid name {name!r}")
        count = pool.get("count", 1)
        if not isinstance(count, int) or count < 0:
            raise TopologyError(f"pool {name}: count must be a non-negative integer")
        gpu = pool.get("gpu") or {}
        if set(gpu) - GPU_KEYS:
            raise TopologyError(f"pool {name}: unknown gpu keys {sorted(set(gpu) - GPU_KEYS)}")
        gpus = int(gpu.get("count", 0))
        for idx in range(count):
            node_name = f"{pool.get('namePrefix', name + '-')}{idx}"
            if not DNS1123.match(node_name) or len(node_name) > 63:
                raise TopologyError(f"pool {name}: invalid node name {node_name!r}")
            if node_name in seen:
                raise TopologyError(f"duplicate node name {node_name!r}")
            seen.add(node_name)
            ctx = {
                "name": node_name,
                "index": idx,
                "pool": name,
                "block": pool.get("topologyBlock", ""),
                "zone": pool.get("zone", ""),
            }
            nodes.append(_node(node_name, pool, gpu, gpus, ctx))
    return nodes


def _node(node_name: str, pool: dict, gpu: dict, gpus: int, ctx: dict) -> dict:
    labels = {
        "kubernetes.io/hostname": node_name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "type": "kwok",
        SIMULATED_LABEL: "true",
        POOL_LABEL: pool["name"],
        "nvidia.com/gpu.present": "true" if gpus else "false",
    }
    optional = {
        "topology.kubernetes.io/zone": pool.get("zone"),
        "topology.kubernetes.io/region": pool.get("region"),
        "node.kubernetes.io/instance-type": pool.get("instanceType"),
        BLOCK_LABEL: pool.get("topologyBlock"),
        NVLINK_LABEL: pool.get("nvlinkDomain"),
    }
    if gpus:
        optional.update(
            {
                "nvidia.com/gpu.count": gpus,
                "nvidia.com/gpu.product": gpu.get("product"),
                "nvidia.com/gpu.memory": gpu.get("memoryMiB"),
                "nvidia.com/gpu.family": gpu.get("family"),
            }
        )
    for key, value in optional.items():
        if value is not None and value != "":
            labels[key] = _fmt(value, ctx)
    for key, value in (pool.get("labels") or {}).items():
        labels[key] = _fmt(value, ctx)

    annotations = {KWOK_ANNOTATION[0]: KWOK_ANNOTATION[1]}
    for key, value in (pool.get("annotations") or {}).items():
        annotations[key] = _fmt(value, ctx)

    resources = {
        "cpu": str(pool.get("cpu", "8")),
        "memory": str(pool.get("memory", "32Gi")),
        "pods": str(pool.get("pods", 110)),
        "ephemeral-storage": str(pool.get("ephemeralStorage", "100Gi")),
    }
    if gpus:
        resources[GPU_RESOURCE] = str(gpus)

    taints = []
    for t in pool.get("taints") or []:
        if not isinstance(t, dict) or "key" not in t or t.get("effect") not in TAINT_EFFECTS:
            raise TopologyError(f"pool {pool['name']}: bad taint {t!r}")
        taint = {"key": str(t["key"]), "effect": t["effect"]}
        if t.get("value") is not None:
            taint["value"] = str(t["value"])
        taints.append(taint)

    spec: dict = {}
    if taints:
        spec["taints"] = taints
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": node_name, "labels": labels, "annotations": annotations},
        "spec": spec,
        # A Node accepts status on create (that is how kubelets register);
        # kwok keeps capacity/allocatable and fills in conditions/addresses.
        "status": {
            "capacity": dict(resources),
            "allocatable": dict(resources),
        },
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "topology", nargs="?", help="topology file (default: $AGENTFLEET_TOPOLOGY or e2e/cluster/topology.yaml)"
    )
    ap.add_argument("--names", action="store_true", help="print node names only")
    args = ap.parse_args(argv)
    try:
        nodes = build_nodes(load_topology(args.topology))
    except (OSError, yaml.YAMLError, TopologyError) as e:
        print(f"nodes.py: {e}", file=sys.stderr)
        return 1
    if args.names:
        print("\n".join(n["metadata"]["name"] for n in nodes))
    else:
        json.dump({"apiVersion": "v1", "kind": "List", "items": nodes}, sys.stdout, indent=1)
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
