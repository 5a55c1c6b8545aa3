"""The placement planner: best fit, gangs, spread, eligibility, stability, and exact reasons."""

from __future__ import annotations

import pytest

from agentfleet.placement import (
    Assignment,
    Node,
    Plan,
    ReplicaNeeds,
    ReplicaRequest,
    Taint,
    Toleration,
    Unplaced,
    plan,
    pod_shape,
)

H100 = "NVIDIA-H100-80GB-HBM3"
A100 = "NVIDIA-A100-SXM4-80GB"
GPU_TAINT = Taint("nvidia.com/gpu", "present", "NoSchedule")


def node(
    name: str,
    gpus: int = 8,
    used: int = 0,
    *,
    product: str = H100,
    memory: int = 81559,
    block: str | None = None,
    zone: str = "zone-a",
    nvlink: str | None = None,
    taints: tuple[Taint, ...] = (GPU_TAINT,),
    labels: dict[str, str] | None = None,
    **kw,
) -> Node:
    lab = {
        "kubernetes.io/hostname": name,
        "nvidia.com/gpu.product": product,
        "nvidia.com/gpu.memory": str(memory),
        "topology.kubernetes.io/zone": zone,
    }
    if block:
        lab["agentfleet.io/topology-block"] = block
    lab["agentfleet.io/nvlink-domain"] = nvlink or f"nvl-{name}"
    lab.update(labels or {})
    return Node(name=name, gpus=gpus, used=used, labels=lab, taints=taints, **kw)


def needs(gpus: int, tp: int | None = None, owner: str = "ns/m", **kw) -> ReplicaNeeds:
    kw.setdefault("spread_across", "None")
    return ReplicaNeeds(owner=owner, gpus=gpus, tensor_parallel=tp or gpus, **kw)


def reqs(d: ReplicaNeeds, *names: str) -> list[ReplicaRequest]:
    return [ReplicaRequest(f"ns/{n}", d) for n in names]


def assignment(p: Plan, key: str) -> Assignment | None:
    """The placement a plan gives (or keeps for) a replica key."""
    return next((a for a in (*p.kept, *p.placed) if a.key == key), None)


def problem(p: Plan, key: str) -> Unplaced | None:
    """Why a plan leaves a replica key unplaced."""
    return next((u for u in p.unplaced if u.key == key), None)


def where(p, key: str) -> tuple[str, ...]:
    a = assignment(p, f"ns/{key}")
    assert a is not None, problem(p, f"ns/{key}")
    return a.nodes


# --- best fit on fragmented clusters ---------------------------------------------------------


def test_best_fit_takes_the_node_with_least_remainder() -> None:
    nodes = [node("a", used=5), node("b"), node("c", used=6)]  # free 3, 8, 2
    p = plan(nodes, reqs(needs(2), "two") + reqs(needs(3), "three"))
    assert where(p, "two") == ("c",)
    assert where(p, "three") == ("a",)


def test_largest_groups_first_keep_a_whole_node_for_the_big_one() -> None:
    # Free 4, 4, 8 and requests 4, 4, 8: first-fit in request order would put a 4 on the 8-node.
    nodes = [node("a", used=4), node("b", used=4), node("c")]
    p = plan(nodes, reqs(needs(4), "r1", "r2") + reqs(needs(8), "r3"))
    assert not p.unplaced
    assert where(p, "r3") == ("c",)
    assert {where(p, "r1"), where(p, "r2")} == {("a",), ("b",)}


def test_fragmented_cluster_packs_small_groups_into_used_nodes() -> None:
    # 1-GPU replicas fill the partly used node before touching whole ones.
    nodes = [node("whole-1"), node("part", used=5), node("whole-2")]
    p = plan(nodes, reqs(needs(1), "a", "b", "c", "d"))
    assert [where(p, k) for k in "abc"] == [("part",)] * 3
    assert where(p, "d") in {("whole-1",), ("whole-2",)}


def test_ties_go_to_the_most_used_block_keeping_whole_blocks_free() -> None:
    nodes = [
        node("a1", block="A"),
        node("a2", used=4, block="A"),
        node("b1", block="B"),
        node("b2", block="B"),
    ]
    p = plan(nodes, reqs(needs(8), "single"))
    assert where(p, "single") == ("a1",)  # block A has 12 free, B 16
    # ...so a later two-node gang still finds a whole block.
    later = plan(nodes, reqs(needs(16, 8), "gang"), existing=[assignment(p, "ns/single")])
    assert where(later, "gang") == ("b1", "b2")


# --- eligibility -----------------------------------------------------------------------------


def test_mixed_products_and_memory() -> None:
    nodes = [node("a100", product=A100, memory=81920), node("h100", used=4), node("small", product=H100, memory=40960)]
    p = plan(nodes, reqs(needs(4, product=H100), "r"))
    assert where(p, "r") == ("h100",)
    # "80Gi" is 81,920 MiB; an H100 reports 81,559: within the 10% tolerance. 40,960 MiB is not.
    p = plan(nodes, reqs(needs(1, min_memory_mib=81920), "r"))
    assert where(p, "r") in {("a100",), ("h100",)}
    p = plan([nodes[2]], reqs(needs(1, min_memory_mib=81920), "r"))
    assert p.unplaced[0].reason == "NoEligibleNodes"
    assert "1 have less than 81920 MiB per GPU" in p.unplaced[0].message


def test_taints_cordons_and_readiness() -> None:
    dedicated = Taint("dedicated", "training", "NoSchedule")
    nodes = [
        node("tainted", taints=(GPU_TAINT, dedicated)),
        node("soft", used=7, taints=(GPU_TAINT, Taint("spot", "", "PreferNoSchedule"))),
        node("cordoned", unschedulable=True),
        node("down", ready=False),
    ]
    p = plan(nodes, reqs(needs(1), "r1", "r2"))
    # The GPU taint is always tolerated; PreferNoSchedule does not exclude.
    assert where(p, "r1") == ("soft",)
    assert problem(p, "ns/r2").reason == "InsufficientGPUs"
    msg = problem(p, "ns/r2").message
    assert (
        "1 are cordoned" in msg
        and "1 are not Ready" in msg
        and "1 have the untolerated taint dedicated=training:NoSchedule" in msg
    )
    tolerating = needs(8, tolerations=(Toleration("dedicated", "Equal", "training", "NoSchedule"),))
    assert where(plan(nodes, reqs(tolerating, "r")), "r") == ("tainted",)
    anything = needs(8, tolerations=(Toleration(operator="Exists"),))
    assert where(plan(nodes, reqs(anything, "r")), "r") == ("tainted",)
    wrong_value = needs(8, tolerations=(Toleration("dedicated", "Equal", "inference"),))
    assert plan(nodes, reqs(wrong_value, "r")).unplaced


def test_node_selector() -> None:
    nodes = [node("a", labels={"pool": "batch"}), node("b", used=4, labels={"pool": "serving"})]
    p = plan(nodes, reqs(needs(2, node_selector=(("pool", "serving"),)), "r"))
    assert where(p, "r") == ("b",)


# --- no fit: exact reasons -------------------------------------------------------------------


def test_no_fit_names_the_largest_free_block() -> None:
    nodes = [node("gpu-11", used=6), node("gpu-12", used=4), node("gpu-13", used=8), node("cpu", gpus=0, taints=())]
    p = plan(nodes, reqs(needs(8, product=H100), "big"))
    (u,) = p.unplaced
    assert u.reason == "InsufficientGPUs"
    assert u.message.startswith(
        "needs 8 x NVIDIA-H100-80GB-HBM3 in one nvlink domain (one node); the largest free block is 4 on node gpu-12"
    )
    assert "(3 eligible nodes, 6 free GPUs in all; excluded: 1 have no nvidia.com/gpu)" in u.message


def test_no_eligible_node_lists_why() -> None:
    nodes = [
        node("a", product=A100),
        node("b", product=A100),
        node("c", taints=(GPU_TAINT, Taint("x", "y", "NoExecute"))),
    ]
    (u,) = plan(nodes, reqs(needs(1, product=H100), "r")).unplaced
    assert u.reason == "NoEligibleNodes"
    assert u.message == (
        "needs 1 x NVIDIA-H100-80GB-HBM3 but no node qualifies: of 3 nodes, 2 are not NVIDIA-H100-80GB-HBM3, 1 "
        "have the untolerated taint x=y:NoExecute"
    )


def test_empty_cluster() -> None:
    (u,) = plan([], reqs(needs(1), "r")).unplaced
    assert u.reason == "NoEligibleNodes" and "none exist" in u.message


# --- gangs -----------------------------------------------------------------------------------


def test_gang_shapes() -> None:
    assert pod_shape(needs(8, 8), 8) == (1, 8, False)
    assert pod_shape(needs(16, 8), 8) == (2, 8, False)  # TP 8 x PP 2 on 8-GPU nodes
    assert pod_shape(needs(16, 4), 8) == (2, 8, False)  # TP 4 x PP 4: two stages per node
    assert pod_shape(needs(6, 2), 4) == (3, 2, False)  # TP 2 x PP 3 on 4-GPU nodes
    assert pod_shape(needs(16, 16), 8) == (2, 8, True)  # TP 16 spans nodes: one NVLink domain
    assert pod_shape(needs(1), 0) is None


def test_gang_lands_in_one_block_all_or_nothing() -> None:
    nodes = [
        node("b1-0", block="block-1"),
        node("b1-1", used=4, block="block-1"),
        node("b2-0", block="block-2"),
        node("b2-1", block="block-2"),
        node("b3-0", block="block-3"),
    ]
    gang = needs(16, 8, product=H100)
    p = plan(nodes, reqs(gang, "g1", "g2"))
    assert where(p, "g1") == ("b2-0", "b2-1")
    assert assignment(p, "ns/g1").gpus_per_node == 8 and assignment(p, "ns/g1").block == "block-2"
    # No second block has two whole nodes: nothing of g2 is placed, so its GPUs stay free.
    (u,) = p.unplaced
    assert u.key == "ns/g2" and u.reason == "InsufficientGPUs"
    assert (
        "needs 2 nodes x 8 x NVIDIA-H100-80GB-HBM3 (16 GPUs, TP 8 x PP 2) in one topology block "
        "(agentfleet.io/topology-block)"
    ) in u.message
    assert "the best block is block-1 with 1 of 2 nodes having >= 8 free GPUs" in u.message
    # The free nodes of other blocks still serve single-node replicas.
    p2 = plan(nodes, reqs(gang, "g1", "g2") + reqs(needs(8), "s"))
    assert where(p2, "s") in {("b1-0",), ("b3-0",)}


def test_gang_needs_block_labels() -> None:
    nodes = [node("a"), node("b")]
    (u,) = plan(nodes, reqs(needs(16, 8), "g")).unplaced
    assert (
        u.reason == "NoTopologyBlock" and "no eligible node carries the agentfleet.io/topology-block label" in u.message
    )


def test_tensor_parallel_across_nodes_stays_in_one_nvlink_domain() -> None:
    # Block R has 4 nodes in two NVLink domains; TP 16 needs two nodes of one domain.
    nodes = [
        node("n0", block="R", nvlink="nvl-a"),
        node("n1", used=8, block="R", nvlink="nvl-a"),
        node("n2", block="R", nvlink="nvl-b"),
        node("n3", block="R", nvlink="nvl-b"),
    ]
    p = plan(nodes, reqs(needs(16, 16), "g"))
    assert where(p, "g") == ("n2", "n3")
    # TP 8 x PP 2 only needs one block: n0 with either of the other domain's nodes.
    p = plan(nodes, reqs(needs(16, 8), "g"))
    assert len(where(p, "g")) == 2 and "n1" not in where(p, "g")
    blocked = [node("n0", block="R", nvlink="nvl-a"), node("n2", block="R", nvlink="nvl-b")]
    (u,) = plan(blocked, reqs(needs(16, 16), "g")).unplaced
    assert "in one agentfleet.io/nvlink-domain domain of one agentfleet.io/topology-block block" in u.message


def test_gang_prefers_the_tightest_block() -> None:
    nodes = [node(f"a{i}", block="A") for i in range(4)] + [node(f"b{i}", block="B") for i in range(2)]
    p = plan(nodes, reqs(needs(16, 8), "g"))
    assert set(where(p, "g")) == {"b0", "b1"}  # block B leaves nothing stranded; A stays whole


# --- spread ----------------------------------------------------------------------------------


def _zones() -> list[Node]:
    return [
        node("za", gpus=16, zone="zone-a"),
        node("zb", gpus=16, zone="zone-b"),
        node("zc", gpus=16, used=16, zone="zone-c"),
    ]


def test_zone_spread_preferred_and_required() -> None:
    pref = needs(8, spread_across="Zone", spread_mode="Preferred")
    p = plan(_zones(), reqs(pref, "r1", "r2", "r3"))
    assert not p.unplaced
    # One per zone with room first; the third goes where the tie-break (best fit, then name) puts it.
    assert [a.zone for a in p.placed] == ["zone-a", "zone-b", "zone-a"]
    req = needs(8, spread_across="Zone", spread_mode="Required")
    p = plan(_zones(), reqs(req, "r1", "r2", "r3"))
    assert {a.zone for a in p.placed} == {"zone-a", "zone-b"}
    (u,) = p.unplaced
    assert u.reason == "SpreadConstraint"
    assert (
        "spread Required across Zone leaves no allowed domain with room: zone-a holds 1, zone-b holds 1, zone-c holds 0"
        in u.message
    )


def test_node_spread_beats_best_fit_when_asked() -> None:
    nodes = [node("a"), node("b"), node("c", used=6)]
    packed = plan(nodes, reqs(needs(1), "r1", "r2"))
    assert where(packed, "r1") == where(packed, "r2") == ("c",)
    spread = needs(1, spread_across="Node", spread_mode="Preferred")
    p = plan(nodes, reqs(spread, "r1", "r2", "r3", "r4"))
    first3 = sorted(where(p, r)[0] for r in ("r1", "r2", "r3"))
    assert first3 == ["a", "b", "c"]
    assert not p.unplaced
    required = needs(8, spread_across="Node", spread_mode="Required")
    p = plan([node("a", gpus=16), node("b", gpus=16)], reqs(required, "r1", "r2", "r3", "r4"))
    assert sorted(a.nodes[0] for a in p.placed) == ["a", "a", "b", "b"]  # max skew 1, then a second round


def test_required_node_spread_refuses_to_stack() -> None:
    required = needs(4, spread_across="Node", spread_mode="Required")
    nodes = [node("a"), node("b", used=8)]
    p = plan(nodes, reqs(required, "r1", "r2"))
    assert where(p, "r1") == ("a",)
    (u,) = p.unplaced
    assert u.reason == "SpreadConstraint" and "1 of 2 eligible nodes already hold a replica of ns/m" in u.message


def test_spread_counts_existing_replicas_of_the_same_owner_only() -> None:
    pref = needs(8, spread_across="Zone")
    old = Assignment("ns/old", "ns/m", ("za",), 8, zone="zone-a")
    other = Assignment("ns/x", "ns/other", ("zb",), 8, zone="zone-b")
    p = plan(_zones(), reqs(pref, "new"), existing=[old, other])
    assert assignment(p, "ns/new").zone == "zone-b"


# --- stability -------------------------------------------------------------------------------


def test_existing_replicas_keep_their_nodes_and_hold_their_gpus() -> None:
    nodes = [node("a"), node("b", used=2)]
    existing = [Assignment("ns/r1", "ns/m", ("a",), 8)]
    p = plan(nodes, reqs(needs(8), "r1", "r2"), existing=existing)
    assert p.kept == tuple(existing) and where(p, "r1") == ("a",)
    # r1's pod does not exist yet (node a shows nothing used), yet its 8 GPUs are not given away.
    (u,) = p.unplaced
    assert u.key == "ns/r2"


def test_bound_pods_of_a_placement_are_not_counted_twice() -> None:
    # r1's pod is bound on a and counted in `used`; `held` tells the planner it is r1's.
    nodes = [node("a", used=8, held={"ns/r1": 8}), node("b")]
    existing = [Assignment("ns/r1", "ns/m", ("a",), 8)]
    p = plan(nodes, reqs(needs(8), "r1", "r2"), existing=existing)
    assert where(p, "r2") == ("b",)


def test_replica_on_a_removed_node_is_displaced_and_replanned() -> None:
    nodes = [node("b")]
    existing = [Assignment("ns/r1", "ns/m", ("gone",), 8)]
    p = plan(nodes, reqs(needs(8), "r1"), existing=existing)
    assert p.displaced == ("ns/r1",) and where(p, "r1") == ("b",)


def test_plans_are_deterministic() -> None:
    nodes = [node(f"n{i}", used=i % 5, block=f"b{i // 4}") for i in range(24)]
    rs = reqs(needs(2), *[f"s{i}" for i in range(10)]) + reqs(needs(16, 8), "g1", "g2")
    assert plan(nodes, rs) == plan(list(reversed(nodes)), list(reversed(rs)))


@pytest.mark.parametrize("seed", range(20))
def test_never_overcommits_and_never_leaves_a_placeable_group(seed: int) -> None:
    import random

    rnd = random.Random(seed)
    nodes = [
        # Odd seeds: blocks inside one zone (racks); even seeds: blocks straddling zones.
        node(
            f"n{i:02d}",
            used=rnd.choice([0, 0, 1, 2, 3, 4, 5, 6, 7, 8]),
            block=f"b{i // 4}",
            zone=f"z{(i // 4) % 3}" if seed % 2 else f"z{i % 3}",
        )
        for i in range(16)
    ]
    sizes = [rnd.choice([1, 1, 2, 2, 4, 8, 16]) for _ in range(14)]
    rs = [
        ReplicaRequest(f"ns/r{k}", needs(g, min(g, 8), spread_across=rnd.choice(["None", "Zone", "Node"])))
        for k, g in enumerate(sizes)
    ]
    p = plan(nodes, rs)
    used = {n.name: n.used for n in nodes}
    for a in p.placed:
        for n in a.nodes:
            used[n] += a.gpus_per_node
    assert all(used[n.name] <= n.gpus for n in nodes)
    # Maximality: whatever is left unplaced does not fit the GPUs left over.
    left = {n.name: n.gpus - used[n.name] for n in nodes}
    for u in p.unplaced:
        g = next(r.needs.gpus for r in rs if r.key == u.key)
        if g <= 8:
            assert max(left.values()) < g, u
        else:
            blocks: dict[str, int] = {}
            for n in nodes:
                if left[n.name] >= 8:
                    b = n.labels["agentfleet.io/topology-block"]
                    blocks[b] = blocks.get(b, 0) + 1
            assert max(blocks.values(), default=0) < g // 8, u


def test_largest_first_places_what_smallest_first_strands() -> None:
    # Pins the order of placement, not only best fit: free 4 and 6, requests 4, 4 and 2. Largest
    # first puts a 4 on the 4-node, a 4 and then the 2 on the 6-node: all three placed. Smallest
    # first puts the 2 where it fits best (the 4-node, remainder 2), a 4 on the 6-node, and the
    # last 4 finds 2 free GPUs on each node: unplaced.
    nodes = [node("four", used=4), node("six", used=2)]
    p = plan(nodes, reqs(needs(2), "small") + reqs(needs(4), "big1", "big2"))
    assert not p.unplaced, [u.message for u in p.unplaced]
    assert where(p, "small") == ("six",)
    assert {where(p, "big1"), where(p, "big2")} == {("four",), ("six",)}


def test_gang_takes_the_tightest_nodes_of_its_block() -> None:
    # Pins which nodes of the chosen block a gang takes: the ones its pods fill exactly. TP 2 x
    # PP 3 on 4-GPU nodes is three pods of 2 GPUs; the block's nodes have 2, 2, 2 and 4 free.
    # The three 2-free nodes leave the 4-free node whole for the next 4-GPU replica; the freest
    # nodes first would split it and strand that replica.
    nodes = [
        node("n0", gpus=4, used=2, block="B"),
        node("n1", gpus=4, block="B"),
        node("n2", gpus=4, used=2, block="B"),
        node("n3", gpus=4, used=2, block="B"),
    ]
    assert pod_shape(needs(6, 2), 4) == (3, 2, False)
    p = plan(nodes, reqs(needs(6, 2), "gang"))
    assert sorted(where(p, "gang")) == ["n0", "n2", "n3"]
    after = plan(nodes, reqs(needs(4), "whole"), existing=[assignment(p, "ns/gang")])
    assert where(after, "whole") == ("n1",)
