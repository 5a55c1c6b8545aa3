"""From Node and Pod lists (as the Kubernetes API returns them) and the ModelReplicaSet API to the planner and back."""

from __future__ import annotations

from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec, ReplicaPlacement

from agentfleet.placement import (
    Assignment,
    Taint,
    Toleration,
    assignment_from_status,
    eligible_gpu_memory_mib,
    inventory_from_k8s,
    needs_for,
    pinned_node,
    placement_status,
    plan,
    pod_gpus,
    requests_for,
)
from e2e.harness.nodes import build_nodes, load_topology


def k8s_node(
    name: str, gpus: int | str = 8, *, ready: str | None = "True", unschedulable: bool = False, taints=None, labels=None
) -> dict:
    n = {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"taints": taints or [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]},
        "status": {"allocatable": {"cpu": "96", "nvidia.com/gpu": str(gpus)}},
    }
    if unschedulable:
        n["spec"]["unschedulable"] = True
    if ready is not None:
        n["status"]["conditions"] = [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": ready}]
    return n


def k8s_pod(
    name: str,
    node: str | None,
    gpus: int,
    *,
    phase: str = "Running",
    labels=None,
    ns: str = "serving",
    limit_only: bool = False,
    affinity_node: str | None = None,
) -> dict:
    res = (
        {"limits": {"nvidia.com/gpu": str(gpus)}}
        if limit_only
        else {"requests": {"nvidia.com/gpu": str(gpus)}, "limits": {"nvidia.com/gpu": str(gpus)}}
    )
    spec: dict = {"containers": [{"name": "c", "resources": res}]}
    if node:
        spec["nodeName"] = node
    if affinity_node:
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [affinity_node]}]}
                    ]
                }
            }
        }
    return {
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "spec": spec,
        "status": {"phase": phase},
    }


def test_gpu_requests_of_pods() -> None:
    assert pod_gpus(k8s_pod("p", "n", 4)) == 4
    assert pod_gpus(k8s_pod("p", "n", 2, limit_only=True)) == 2
    pod = {
        "spec": {
            "initContainers": [
                {"name": "fetch", "resources": {"requests": {"nvidia.com/gpu": "8"}}},
                {"name": "sidecar", "restartPolicy": "Always", "resources": {"requests": {"nvidia.com/gpu": "1"}}},
            ],
            "containers": [{"name": "a", "resources": {"requests": {"nvidia.com/gpu": "2"}}}, {"name": "b"}],
        }
    }
    # max(containers + sidecars = 3, largest plain init container = 8)
    assert pod_gpus(pod) == 8
    assert pod_gpus({"spec": {"containers": [{"name": "a"}]}}) == 0


def test_pinned_nodes() -> None:
    assert pinned_node(k8s_pod("p", "n1", 1)) == "n1"
    assert pinned_node(k8s_pod("p", None, 1, affinity_node="n2")) == "n2"
    by_label = {
        "spec": {
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n3"]}
                                ]
                            }
                        ]
                    }
                }
            }
        }
    }
    assert pinned_node(by_label) == "n3"
    assert pinned_node(k8s_pod("p", None, 1)) is None


def test_inventory_counts_used_and_held_gpus() -> None:
    nodes = [
        k8s_node("n1"),
        k8s_node(
            "n2", taints=[{"key": "nvidia.com/gpu", "effect": "NoSchedule"}, {"key": "maint", "effect": "NoExecute"}]
        ),
        k8s_node("n3", ready="False"),
        k8s_node("n4", unschedulable=True),
        k8s_node("n5", gpus=0, ready=None),
    ]
    pods = [
        k8s_pod("r1", "n1", 4, labels={"agentfleet.io/replica": "llama-r1"}),
        k8s_pod("other", "n1", 2),
        k8s_pod("done", "n1", 2, phase="Succeeded"),
        k8s_pod("failed", "n1", 2, phase="Failed"),
        k8s_pod("pinned", None, 3, phase="Pending", affinity_node="n2", labels={"agentfleet.io/replica": "llama-r2"}),
        k8s_pod("unbound", None, 1, phase="Pending"),
        k8s_pod("cpu", "n2", 0),
    ]
    inv = {n.name: n for n in inventory_from_k8s(nodes, pods)}
    assert (inv["n1"].gpus, inv["n1"].used, inv["n1"].free) == (8, 6, 2)
    assert inv["n1"].held == {"serving/llama-r1": 4}
    assert inv["n2"].used == 3 and inv["n2"].held == {"serving/llama-r2": 3}
    assert Taint("maint", "", "NoExecute") in inv["n2"].taints
    assert not inv["n3"].ready and inv["n4"].unschedulable
    assert inv["n5"].ready and inv["n5"].gpus == 0


def test_e2e_topology_plans_as_expected() -> None:
    # The kwok cluster of the e2e suite: 3 blocks of 2 H100 nodes, an L4 and an A10G node, 2 CPU nodes.
    nodes = inventory_from_k8s(build_nodes(load_topology("e2e/cluster/topology.yaml")), [])
    spec = ModelReplicaSetSpec.model_validate(
        {
            "model": {"name": "meta-llama/Llama-3.1-405B-Instruct-FP8"},
            "engine": {"tensorParallelSize": 8, "pipelineParallelSize": 2},
            "gpu": {"product": "NVIDIA-H100-80GB-HBM3"},
        }
    )
    rs = requests_for("serving", "llama-405b", spec, ["llama-405b-a", "llama-405b-b", "llama-405b-c", "llama-405b-d"])
    p = plan(nodes, rs)
    blocks = {a.block for a in p.placed}
    assert len(p.placed) == 3 and blocks == {"block-1", "block-2", "block-3"}
    assert all(len(a.nodes) == 2 and a.gpus_per_node == 8 for a in p.placed)
    # Zone spread: block-3 is the only block of sim-zone-b, so it is among the first two.
    assert {p.placed[0].zone, p.placed[1].zone} == {"sim-zone-a", "sim-zone-b"}
    (u,) = p.unplaced
    assert u.message.startswith(
        "needs 2 nodes x 8 x NVIDIA-H100-80GB-HBM3 (16 GPUs, TP 8 x PP 2) in one topology block"
    )
    small = ModelReplicaSetSpec.model_validate(
        {"model": {"name": "HuggingFaceTB/SmolLM2-135M-Instruct"}, "gpu": {"product": "NVIDIA-L4"}}
    )
    p = plan(nodes, requests_for("serving", "smol", small, [f"smol-{i}" for i in range(5)]))
    assert [a.nodes for a in p.placed] == [("l4-0",)] * 4 and len(p.unplaced) == 1
    assert eligible_gpu_memory_mib(nodes, needs_for("serving", "smol", small)) == 23034


def test_demand_from_spec() -> None:
    spec = ModelReplicaSetSpec.model_validate(
        {
            "model": {"name": "m"},
            "engine": {"tensorParallelSize": 4, "pipelineParallelSize": 2},
            "gpu": {"product": "NVIDIA-H100-80GB-HBM3", "memory": "80Gi", "resourceName": "nvidia.com/gpu"},
            "placement": {
                "spreadAcross": "Node",
                "spreadMode": "Required",
                "nodeSelector": {"pool": "serving"},
                "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "llm", "effect": "NoSchedule"}],
                "blockKey": "example.com/rack",
            },
        }
    )
    d = needs_for("ns", "m", spec)
    assert (d.owner, d.gpus, d.tensor_parallel, d.pipeline_parallel) == ("ns/m", 8, 4, 2)
    assert d.min_memory_mib == 81920 and d.node_selector == (("pool", "serving"),)
    assert d.tolerations == (Toleration("dedicated", "Equal", "llm", "NoSchedule"),)
    assert (d.spread_across, d.spread_mode, d.keys.block) == ("Node", "Required", "example.com/rack")


def test_status_round_trip() -> None:
    a = Assignment("ns/m-r1", "ns/m", ("n1", "n2"), 8, block="b1", zone="z1")
    st = placement_status(a, phase="Loading")
    assert st == ReplicaPlacement(
        name="m-r1", nodes=["n1", "n2"], gpus=16, gpus_per_node=8, block="b1", zone="z1", phase="Loading"
    )
    assert assignment_from_status("ns", "m", st.wire()) == a
    assert assignment_from_status("ns", "m", {"name": "m-r2"}) is None
