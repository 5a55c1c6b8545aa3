"""Reading Nodes, Pods and the ModelReplicaSet spec into the planner's terms, field by field.

Each test pins behaviour that a mutmut survivor showed no other placement test looked at
(the dated log 2026-11-25-mutation-history in git history, fourth round)."""

from __future__ import annotations

from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec

from agentfleet.placement import (
    Assignment,
    Node,
    ReplicaNeeds,
    ReplicaRequest,
    Taint,
    Toleration,
    TopologyKeys,
    assignment_from_status,
    eligible_gpu_memory_mib,
    inventory_from_k8s,
    needs_for,
    pinned_node,
    plan,
    pod_gpus,
    requests_for,
)


def _gpu_pod(
    name: str,
    node: str | None,
    gpus: int,
    *,
    labels=None,
    ns: str | None = "serving",
    resource: str = "nvidia.com/gpu",
    spec=None,
) -> dict:
    meta: dict = {"name": name, "labels": labels or {}}
    if ns is not None:
        meta["namespace"] = ns
    s = spec or {"containers": [{"name": "c", "resources": {"requests": {resource: str(gpus)}}}]}
    if node:
        s["nodeName"] = node
    return {"metadata": meta, "spec": s, "status": {"phase": "Running"}}


def _k8s_node(name: str, allocatable: dict, *, conditions=None, taints=None) -> dict:
    n: dict = {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {"allocatable": allocatable},
    }
    if conditions is not None:
        n["status"]["conditions"] = conditions
    if taints is not None:
        n["spec"]["taints"] = taints
    return n


def test_toleration_wire_is_the_kubernetes_form() -> None:
    # Pins Toleration.wire (rendered into every serving pod): no key for a match-all, no value
    # with Exists, and each field under its API name.
    assert Toleration("nvidia.com/gpu", "Exists", effect="NoSchedule").wire() == {
        "key": "nvidia.com/gpu",
        "operator": "Exists",
        "effect": "NoSchedule",
    }
    assert Toleration(operator="Exists").wire() == {"operator": "Exists"}
    assert Toleration("dedicated", "Equal", "llm", "NoExecute").wire() == {
        "key": "dedicated",
        "operator": "Equal",
        "value": "llm",
        "effect": "NoExecute",
    }
    assert Toleration("dedicated", "Exists", "llm").wire() == {"key": "dedicated", "operator": "Exists"}
    assert Toleration("dedicated", "Equal").wire() == {"key": "dedicated", "operator": "Equal"}


def test_a_taint_without_a_value_prints_as_key_and_effect() -> None:
    # Pins Taint.__str__ (it names the taint in the NoEligibleNodes message): no "=" without a value.
    assert str(Taint("maint", "", "NoExecute")) == "maint:NoExecute"
    assert str(Taint("dedicated", "training", "NoSchedule")) == "dedicated=training:NoSchedule"


def test_no_eligible_node_means_no_gpu_memory_figure() -> None:
    # Pins eligible_gpu_memory_mib's empty case: None (the capacity model then has no input), not an error.
    d = ReplicaNeeds(owner="ns/m", gpus=1, product="NVIDIA-L4")
    other = Node("a100", 8, labels={"nvidia.com/gpu.product": "NVIDIA-A100", "nvidia.com/gpu.memory": "81920"})
    assert eligible_gpu_memory_mib([], d) is None
    assert eligible_gpu_memory_mib([other], d) is None


def test_sidecar_gpus_add_to_the_containers() -> None:
    # Pins pod_gpus' sidecar sum: restartable init containers run beside the containers, so
    # containers 2 + sidecar 1 = 3, more than the plain init container's 2.
    pod = {
        "spec": {
            "initContainers": [
                {"name": "fetch", "resources": {"requests": {"nvidia.com/gpu": "2"}}},
                {"name": "sidecar", "restartPolicy": "Always", "resources": {"requests": {"nvidia.com/gpu": "1"}}},
            ],
            "containers": [{"name": "a", "resources": {"requests": {"nvidia.com/gpu": "2"}}}],
        }
    }
    assert pod_gpus(pod) == 3


def test_gpu_quantities_in_suffix_form_and_unreadable_ones() -> None:
    # Pins the quantity fallback: "1k" is 1000 GPUs, an unreadable quantity is none (not one).
    assert (
        pod_gpus(
            _gpu_pod(
                "p", "n", 0, spec={"containers": [{"name": "c", "resources": {"requests": {"nvidia.com/gpu": "1k"}}}]}
            )
        )
        == 1000
    )
    bad = _k8s_node("bad", {"nvidia.com/gpu": "lots"})
    none = _k8s_node("cpu", {"cpu": "96"})
    inv = {n.name: n.gpus for n in inventory_from_k8s([bad, none], [])}
    assert inv == {"bad": 0, "cpu": 0}


def test_only_a_single_in_on_the_node_key_pins_a_pod() -> None:
    # Pins pinned_node's test of each expression: the node key (or metadata.name), the In
    # operator and one value, all three.
    def pod(expr: dict) -> dict:
        terms = [{"matchExpressions": [expr]}]
        return {
            "spec": {
                "affinity": {
                    "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}
                }
            }
        }

    assert pinned_node(pod({"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1"]})) == "n1"
    assert pinned_node(pod({"key": "kubernetes.io/hostname", "operator": "NotIn", "values": ["n1"]})) is None
    assert pinned_node(pod({"key": "pool", "operator": "In", "values": ["serving"]})) is None
    assert pinned_node(pod({"key": "kubernetes.io/hostname", "operator": "In", "values": ["n1", "n2"]})) is None


def test_readiness_is_read_from_the_ready_condition_among_others() -> None:
    # Pins _ready: the Ready condition is found among other conditions and "True" means ready.
    ok = _k8s_node(
        "ok",
        {"nvidia.com/gpu": "8"},
        conditions=[{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
    )
    down = _k8s_node(
        "down",
        {"nvidia.com/gpu": "8"},
        conditions=[{"type": "DiskPressure", "status": "True"}, {"type": "Ready", "status": "False"}],
    )
    inv = {n.name: n.ready for n in inventory_from_k8s([ok, down], [])}
    assert inv == {"ok": True, "down": False}


def test_inventory_counts_every_pinned_gpu_pod_and_sums_a_replicas_pods() -> None:
    # Pins inventory_from_k8s' pod loop: a pod pinned by hostname affinity counts (the default
    # node key), an unbound pod before others does not stop the count, a 1-GPU pod counts,
    # a replica's two pods on one node (one terminating) are summed, a pod without a namespace
    # is in "default", and the GPU resource is the one asked for.
    pinned = {
        "metadata": {"name": "planned", "namespace": "serving", "labels": {"agentfleet.io/replica": "m-r2"}},
        "spec": {
            "containers": [{"name": "c", "resources": {"requests": {"nvidia.com/gpu": "2"}}}],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {"key": "kubernetes.io/hostname", "operator": "In", "values": ["n2"]}
                                ]
                            }
                        ]
                    }
                }
            },
        },
        "status": {"phase": "Pending"},
    }
    pods = [
        _gpu_pod("unbound", None, 4),
        _gpu_pod("one", "n1", 1),
        _gpu_pod("r1-old", "n1", 2, labels={"agentfleet.io/replica": "m-r1"}),
        _gpu_pod("r1-new", "n1", 2, labels={"agentfleet.io/replica": "m-r1"}),
        _gpu_pod("bare", "n2", 1, labels={"agentfleet.io/replica": "m-r3"}, ns=None),
        pinned,
    ]
    nodes = [_k8s_node("n1", {"nvidia.com/gpu": "8"}), _k8s_node("n2", {"nvidia.com/gpu": "8"})]
    inv = {n.name: n for n in inventory_from_k8s(nodes, pods)}
    assert inv["n1"].used == 5 and inv["n1"].held == {"serving/m-r1": 4}
    assert inv["n2"].used == 3 and inv["n2"].held == {"default/m-r3": 1, "serving/m-r2": 2}
    amd_nodes = [_k8s_node("a1", {"amd.com/gpu": "8"})]
    amd = inventory_from_k8s(amd_nodes, [_gpu_pod("p", "a1", 3, resource="amd.com/gpu")], resource="amd.com/gpu")
    assert (amd[0].gpus, amd[0].used) == (8, 3)
    # With another node key, a pod pinned by that label counts.
    by_rack_key = {
        **pinned,
        "spec": {
            **pinned["spec"],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchExpressions": [{"key": "ex/node", "operator": "In", "values": ["n2"]}]}
                        ]
                    }
                }
            },
        },
    }
    assert inventory_from_k8s(nodes, [by_rack_key], node_key="ex/node")[1].used == 2


def test_a_taints_value_is_read() -> None:
    # Pins the taint's value from the Node spec: without it, a toleration by value would not match.
    n = _k8s_node(
        "t", {"nvidia.com/gpu": "8"}, taints=[{"key": "dedicated", "value": "training", "effect": "NoSchedule"}]
    )
    (node,) = inventory_from_k8s([n], [])
    assert node.taints == (Taint("dedicated", "training", "NoSchedule"),)


def test_gpus_held_by_existing_placements_count_against_their_block() -> None:
    # Pins Ledger.reserve's block bookkeeping: an existing placement whose pod is not yet created
    # takes its GPUs from its block's free count, which orders ties (fewest free GPUs first).
    def nodes(b2_used: int) -> list[Node]:
        lab = lambda b: {"agentfleet.io/topology-block": b, "topology.kubernetes.io/zone": "z"}  # noqa: E731
        return [
            Node("a1", 8, labels=lab("A")),
            Node("a2", 8, labels=lab("A")),
            Node("b1", 8, labels=lab("B")),
            Node("b2", 8, used=b2_used, labels=lab("B")),
        ]

    d = ReplicaNeeds(owner="ns/m", gpus=8, tensor_parallel=8, spread_across="None")
    # Block A: 16 - 4 held = 12 free; block B: 16 - 3 used = 13. A is the fuller block.
    p = plan(nodes(3), [ReplicaRequest("ns/new", d)], existing=[Assignment("ns/old", "ns/m", ("a2",), 4)])
    assert p.placed[0].nodes == ("a1",)
    # Block A: 16 - 2 held = 14 free; block B 13: now B is the fuller block.
    p = plan(nodes(3), [ReplicaRequest("ns/new", d)], existing=[Assignment("ns/old", "ns/m", ("a2",), 2)])
    assert p.placed[0].nodes == ("b1",)


def test_demand_reads_the_gpu_resource_and_every_topology_key() -> None:
    # Pins needs_for's resource and topology keys, and requests_for's keys and owner.
    spec = ModelReplicaSetSpec.model_validate(
        {
            "model": {"name": "m"},
            "gpu": {"resourceName": "amd.com/gpu"},
            "placement": {
                "nodeKey": "ex/node",
                "nvlinkDomainKey": "ex/nvl",
                "blockKey": "ex/rack",
                "zoneKey": "ex/zone",
            },
        }
    )
    d = needs_for("ns", "m", spec)
    assert d.resource == "amd.com/gpu"
    assert d.keys == TopologyKeys(node="ex/node", nvlink="ex/nvl", block="ex/rack", zone="ex/zone")
    assert requests_for("ns", "m", spec, ["m-0", "m-1"]) == [ReplicaRequest("ns/m-0", d), ReplicaRequest("ns/m-1", d)]
    assert d.owner == "ns/m"


def test_a_recorded_placement_needs_nodes() -> None:
    # Pins assignment_from_status: no nodes is no placement; nodes without GPUs is a CPU replica's
    # placement (it holds no GPU); one GPU is one.
    assert assignment_from_status("ns", "m", {"name": "m-r1", "nodes": [], "gpus": 0}) is None
    assert assignment_from_status("ns", "m", {"name": "m-r1", "nodes": ["n1"], "gpus": 0}) == Assignment(
        "ns/m-r1", "ns/m", ("n1",), 0
    )
    one = assignment_from_status("ns", "m", {"name": "m-r1", "nodes": ["n1"], "gpus": 1})
    assert one == Assignment("ns/m-r1", "ns/m", ("n1",), 1)


def test_a_toleration_without_a_value_tolerates_a_taint_without_one() -> None:
    # Pins Toleration.tolerates' Equal match of an absent value against a taint's empty value.
    assert Toleration("maint").tolerates(Taint("maint", "", "NoSchedule"))
    assert not Toleration("maint").tolerates(Taint("maint", "soon", "NoSchedule"))
