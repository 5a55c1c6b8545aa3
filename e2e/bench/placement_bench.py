#!/usr/bin/env python3
"""Placement planner benchmark (prints figures; not a test).

1. Speed: plan() for 5,000 nodes x 8 GPUs and 1,000 replicas (goal: under 100 ms), and the
   inventory adapter on the matching Node and Pod lists.
2. Quality on seeded fragmented clusters: groups (replicas) placed by
   - the planner (largest first, best fit, gangs inside one topology block, all or nothing);
   - simulations of the kube-scheduler, pods in arrival order, each scored alone, with no gang
     semantics: a gang whose pods do not all fit still holds the GPUs of those that did, and one
     whose pods land in different blocks does not count. Two configurations:
       default   as shipped: NodeResourcesFit LeastAllocated and NodeResourcesBalancedAllocation
                 over cpu and memory only (nvidia.com/gpu is not scored), with the pods'
                 scoring defaults of 100m CPU and 200 MB when they request none, integer scores,
                 ties at random, and percentageOfNodesToScore's adaptive sample (all nodes under
                 100, else 50% - nodes/125, at least 100, scanned from a rotating start);
       best      what a GPU cluster's admin sets: NodeResourcesFit MostAllocated over
                 nvidia.com/gpu (weight 1) and percentageOfNodesToScore 100, i.e. best fit;
   - the optimum: exact by exhaustive search on small instances (max groups, and separately max
     GPUs), an upper bound on large ones.
   Goal: the planner never leaves a placeable group unplaced ("stranded" below: an unplaced group
   that would fit in what is left free).

    .venv/bin/python -m e2e.bench.placement_bench [--quick] [--seed 1]
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import statistics
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from functools import cache

from agentfleet.placement import (
    Node,
    ReplicaNeeds,
    ReplicaRequest,
    Taint,
    inventory_from_k8s,
    plan,
)

H100 = "NVIDIA-H100-80GB-HBM3"
A100 = "NVIDIA-A100-SXM4-80GB"
GPU_TAINT = Taint("nvidia.com/gpu", "present", "NoSchedule")
BLOCK = "agentfleet.io/topology-block"


def mk_node(name: str, gpus: int, used: int, block: str, zone: str, product: str = H100) -> Node:
    labels = {
        "kubernetes.io/hostname": name,
        "nvidia.com/gpu.product": product,
        "nvidia.com/gpu.memory": "81559",
        BLOCK: block,
        "agentfleet.io/nvlink-domain": f"nvl-{name}",
        "topology.kubernetes.io/zone": zone,
    }
    return Node(name=name, gpus=gpus, used=used, labels=labels, taints=(GPU_TAINT,))


# --- 1. speed --------------------------------------------------------------------------------


def big_cluster(rnd: random.Random, n_nodes: int = 5000, per_block: int = 16) -> list[Node]:
    nodes = []
    for i in range(n_nodes):
        # A third of the nodes already run something: 1 to 7 GPUs in use.
        used = rnd.choice([1, 2, 3, 4, 5, 6, 7]) if rnd.random() < 0.33 else 0
        product = A100 if i % 10 == 9 else H100
        # Blocks (racks) of 16 nodes, each rack in one of 3 zones.
        nodes.append(
            mk_node(f"gpu-{i:05d}", 8, used, f"block-{i // per_block:04d}", f"zone-{(i // per_block) % 3}", product)
        )
    return nodes


def big_requests(rnd: random.Random, n: int = 1000, owners: int = 25) -> list[ReplicaRequest]:
    shapes = [(1, 1)] * 35 + [(2, 2)] * 25 + [(4, 4)] * 20 + [(8, 8)] * 15 + [(16, 8)] * 5  # (GPUs, TP)
    demands = []
    for o in range(owners):
        g, tp = rnd.choice(shapes)
        demands.append(
            ReplicaNeeds(
                owner=f"ns/m{o}",
                gpus=g,
                tensor_parallel=tp,
                product=A100 if o % 8 == 7 else H100,
                spread_across=rnd.choice(["Zone", "Zone", "Node", "None"]),
            )
        )
    return [ReplicaRequest(f"ns/m{k % owners}-r{k}", demands[k % owners]) for k in range(n)]


def k8s_lists(nodes: list[Node]) -> tuple[list[dict], list[dict]]:
    knodes, kpods = [], []
    for n in nodes:
        knodes.append(
            {
                "metadata": {"name": n.name, "labels": dict(n.labels)},
                "spec": {"taints": [{"key": t.key, "value": t.value, "effect": t.effect} for t in n.taints]},
                "status": {
                    "allocatable": {"nvidia.com/gpu": str(n.gpus)},
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            }
        )
        if n.used:
            kpods.append(
                {
                    "metadata": {"name": f"job-{n.name}", "namespace": "batch", "labels": {}},
                    "spec": {
                        "nodeName": n.name,
                        "containers": [{"name": "c", "resources": {"requests": {"nvidia.com/gpu": str(n.used)}}}],
                    },
                    "status": {"phase": "Running"},
                }
            )
    return knodes, kpods


def bench_speed(seed: int, runs: int) -> None:
    rnd = random.Random(seed)
    nodes = big_cluster(rnd)
    reqs = big_requests(rnd)
    knodes, kpods = k8s_lists(nodes)
    t_inv = []
    for _ in range(runs):
        t0 = time.perf_counter()
        inventory_from_k8s(knodes, kpods)
        t_inv.append(time.perf_counter() - t0)
    t_plan, c_plan = [], []
    result = None
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        result = plan(nodes, reqs)
        t_plan.append(time.perf_counter() - t0)
        c_plan.append(time.process_time() - c0)
    gangs = sum(1 for r in reqs if r.needs.gpus > 8)
    print("== speed: 5,000 nodes x 8 GPUs (10% A100, a third partly used), 1,000 replicas of 25 ModelReplicaSets")
    print(
        f"   replicas: {len(reqs)} ({gangs} two-node gangs), GPUs asked {sum(r.needs.gpus for r in reqs):,} of "
        f"{sum(n.free for n in nodes):,} free"
    )
    print(
        f"   plan():              median {statistics.median(t_plan) * 1e3:7.1f} ms   min {min(t_plan) * 1e3:7.1f} ms   "
        f"CPU median {statistics.median(c_plan) * 1e3:5.1f} ms   (goal < 100 ms; {runs} runs; load average "
        f"{os.getloadavg()[0]:.1f})"
    )
    print(
        f"   inventory_from_k8s:  median {statistics.median(t_inv) * 1e3:7.1f} ms   ({len(knodes)} nodes, "
        f"{len(kpods)} pods)"
    )
    assert result is not None
    reasons = Counter(u.reason for u in result.unplaced)
    print(f"   placed {len(result.placed)}, unplaced {len(result.unplaced)} {dict(reasons)}")


# --- 2. quality ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Group:
    key: str
    gpus: int
    tp: int


@dataclass
class Cluster:
    names: list[str]
    cap: list[int]
    free: list[int]
    block: list[str]


def frag_cluster(rnd: random.Random, n_nodes: int, per_block: int) -> Cluster:
    names, cap, free, block = [], [], [], []
    for i in range(n_nodes):
        used = rnd.choice([0, 0, 1, 2, 3, 4, 5, 6, 7, 8]) if rnd.random() < 0.6 else 0
        names.append(f"n{i:04d}")
        cap.append(8)
        free.append(8 - used)
        block.append(f"b{i // per_block}")
    return Cluster(names, cap, free, block)


def frag_groups(rnd: random.Random, n: int) -> list[Group]:
    out = []
    for k in range(n):
        g = rnd.choice([1, 1, 2, 2, 4, 4, 8, 8, 16])
        out.append(Group(f"ns/g{k}", g, min(g, 8)))
    return out


def pods_of(g: Group) -> tuple[int, int]:
    return (1, g.gpus) if g.gpus <= 8 else (g.gpus // 8, 8)


def audit(c: Cluster, groups: list[Group], bound: dict[str, list[int]]) -> tuple[set[str], int, int]:
    """What the bindings made of the groups, measured the same way for every placer: the groups
    that came up (all pods bound, in one block), the gangs whose pods all bound but across
    blocks, and the GPUs held by pods of groups that did not come up."""
    placed: set[str] = set()
    split = held = 0
    for g in groups:
        pods, per = pods_of(g)
        b = bound.get(g.key, [])
        if len(b) == pods and len({c.block[i] for i in b}) == 1:
            placed.add(g.key)
        else:
            split += len(b) == pods
            held += per * len(b)
    return placed, split, held


# The default profile's view of a GPU node's cpu and memory (an 8-GPU H100 server) and of a pod
# that requests none (the scheduler's non-zero scoring defaults, schedutil.DefaultMilliCPURequest
# and DefaultMemoryRequest); 192 CPUs and 2000Gi as e2e/harness/nodes.py gives the kwok nodes.
NODE_MILLICPU, NODE_MEMORY = 192_000, 2000 * 2**30
POD_MILLICPU, POD_MEMORY = 100, 200 * 2**20
MAX_SCORE = 100


def nodes_to_score(n: int) -> int:
    """numFeasibleNodesToFind with percentageOfNodesToScore unset (kube-scheduler schedule_one.go)."""
    if n < 100:
        return n
    pct = max(5, 50 - n // 125)
    return max(100, n * pct // 100)


def default_score(pods_on_node: int) -> int:
    """NodeResourcesFit LeastAllocated + NodeResourcesBalancedAllocation over cpu and memory
    (weight 1 each) for a node already holding pods_on_node pods, with this pod added."""
    k = pods_on_node + 1
    cpu_req, mem_req = k * POD_MILLICPU, k * POD_MEMORY
    least = (
        (NODE_MILLICPU - cpu_req) * MAX_SCORE // NODE_MILLICPU + (NODE_MEMORY - mem_req) * MAX_SCORE // NODE_MEMORY
    ) // 2
    fc, fm = cpu_req / NODE_MILLICPU, mem_req / NODE_MEMORY
    std = abs(fc - fm) / 2
    balanced = int((1 - std) * MAX_SCORE)
    return least + balanced


def run_kube(
    c: Cluster, groups: list[Group], rnd: random.Random, scoring: str = "default"
) -> tuple[dict[str, list[int]], list[int]]:
    """Pods in arrival order, each bound to the best-scored feasible node of the nodes scored
    (scoring "default" or "best", see the module doc). Returns each group's bound nodes (one
    per pod that bound) and the free GPUs left."""
    free = list(c.free)
    # The pods already on each node: one per partly used node (whatever uses its GPUs).
    pods_on = [int(f < cap) for f, cap in zip(c.free, c.cap, strict=True)]
    n = len(free)
    start = 0
    bound: dict[str, list[int]] = {}
    for g in groups:
        pods, per = pods_of(g)
        b = bound.setdefault(g.key, [])
        for _ in range(pods):
            want = nodes_to_score(n) if scoring == "default" else n
            feasible: list[int] = []
            scanned = 0
            for k in range(n):
                i = (start + k) % n
                scanned += 1
                if free[i] >= per:
                    feasible.append(i)
                    if len(feasible) >= want:
                        break
            start = (start + scanned) % n
            if not feasible:
                break
            if scoring == "default":
                scores = {i: default_score(pods_on[i]) for i in feasible}
            else:  # MostAllocated over nvidia.com/gpu: GPUs in use after this pod / capacity
                scores = {i: (c.cap[i] - free[i] + per) * MAX_SCORE // c.cap[i] for i in feasible}
            top = max(scores.values())
            i = rnd.choice([i for i in feasible if scores[i] == top])
            free[i] -= per
            pods_on[i] += 1
            b.append(i)
    return bound, free


def run_planner_bound(c: Cluster, groups: list[Group]) -> tuple[dict[str, list[int]], list[int]]:
    nodes = [mk_node(n, cap, cap - f, b, "z") for n, cap, f, b in zip(c.names, c.cap, c.free, c.block, strict=True)]
    reqs = [
        ReplicaRequest(g.key, ReplicaNeeds(owner="ns/x", gpus=g.gpus, tensor_parallel=g.tp, spread_across="None"))
        for g in groups
    ]
    p = plan(nodes, reqs)
    free = list(c.free)
    idx = {n: i for i, n in enumerate(c.names)}
    bound: dict[str, list[int]] = {}
    for a in p.placed:
        for n in a.nodes:
            free[idx[n]] -= a.gpus_per_node
            bound.setdefault(a.key, []).append(idx[n])
    return bound, free


def stranded(c: Cluster, groups: list[Group], placed: set[str], free: list[int]) -> int:
    """Unplaced groups that would still fit in what is left free."""
    n = 0
    for g in groups:
        if g.key in placed:
            continue
        pods, per = pods_of(g)
        if pods == 1:
            n += any(f >= per for f in free)
        else:
            by = Counter(c.block[i] for i, f in enumerate(free) if f >= per)
            n += any(v >= pods for v in by.values())
    return n


def optimum(c: Cluster, groups: list[Group], objective: str) -> int:
    """Exact best over all placements (count of groups, or GPUs), by memoised search."""
    order = sorted(groups, key=lambda g: -g.gpus)
    blocks = sorted(set(c.block))
    members = {b: [i for i in range(len(c.free)) if c.block[i] == b] for b in blocks}
    value = [1 if objective == "count" else g.gpus for g in order]
    suffix = [sum(value[k:]) for k in range(len(order) + 1)]

    @cache
    def best(k: int, state: tuple[tuple[int, ...], ...]) -> int:
        if k == len(order):
            return 0
        g = order[k]
        pods, per = pods_of(g)
        res = best(k + 1, state)  # leave group k out
        if res == suffix[k + 1] + value[k]:
            return res
        for bi, frees in enumerate(state):
            if pods == 1:
                options = {j for j, f in enumerate(frees) if f >= per}
                # Nodes of one block with equal free GPUs are interchangeable.
                seen = set()
                for j in sorted(options):
                    if frees[j] in seen:
                        continue
                    seen.add(frees[j])
                    nf = list(frees)
                    nf[j] -= per
                    ns = tuple(sorted(state[:bi] + (tuple(sorted(nf)),) + state[bi + 1 :]))
                    res = max(res, value[k] + best(k + 1, ns))
            else:
                capable = [j for j, f in enumerate(frees) if f >= per]
                seen_sets = set()
                for chosen in itertools.combinations(capable, pods):
                    sig = tuple(frees[j] for j in chosen)
                    if sig in seen_sets:
                        continue
                    seen_sets.add(sig)
                    nf = list(frees)
                    for j in chosen:
                        nf[j] -= per
                    ns = tuple(sorted(state[:bi] + (tuple(sorted(nf)),) + state[bi + 1 :]))
                    res = max(res, value[k] + best(k + 1, ns))
        return res

    # Blocks, and nodes within a block, are interchangeable up to their free GPUs: sorted states.
    start = tuple(sorted(tuple(sorted(c.free[i] for i in members[b])) for b in blocks))
    return best(0, start)


def upper_bound_count(c: Cluster, groups: list[Group]) -> int:
    """Groups that could fit ignoring fragmentation: smallest first within the free GPU total, and
    no more groups of one size than the nodes' free GPUs split into that size allow."""
    total = sum(c.free)
    per_size = Counter(g.gpus for g in groups)
    room = {s: sum(f // min(s, 8) for f in c.free) // max(1, s // 8) for s in per_size}
    n = 0
    for g in sorted(groups, key=lambda g: g.gpus):
        if total >= g.gpus and room[g.gpus] > 0:
            total -= g.gpus
            room[g.gpus] -= 1
            n += 1
    return n


KUBE_ROWS = (("kube-sched default", "default"), ("kube-sched best", "best"))


def _score(c: Cluster, groups: list[Group], rnd: random.Random) -> dict[str, tuple[set[str], list[int], int, int]]:
    """Each placer's (groups up, free GPUs left, gangs split, GPUs held by dead gangs) on one instance."""
    out = {}
    bound, free = run_planner_bound(c, groups)
    placed, split, held = audit(c, groups, bound)
    out["planner"] = (placed, free, split, held)
    seed = rnd.random()  # one draw per instance, as before the second kube row, so the instances do not move
    for k, (label, scoring) in enumerate(KUBE_ROWS):
        bound, free = run_kube(c, groups, random.Random(seed + k), scoring)
        placed, split, held = audit(c, groups, bound)
        out[label] = (placed, free, split, held)
    return out


def _tally(rows: dict, res: dict[str, tuple[set[str], list[int], int, int]], c: Cluster, groups: list[Group]) -> None:
    gp = {g.key: g.gpus for g in groups}
    for label, (placed, free, split, held) in res.items():
        rows[label, "n"].append(len(placed))
        rows[label, "g"].append(sum(gp[k] for k in placed))
        rows[label, "stranded"].append(stranded(c, groups, placed, free))
        rows[label, "split"].append(split)
        rows[label, "held"].append(held)


def bench_quality(seed: int, small: int, large: int) -> None:
    rnd = random.Random(seed)
    rows: dict[str, list] = defaultdict(list)
    labels = ["planner", *(label for label, _ in KUBE_ROWS)]
    t_opt = 0.0
    for _ in range(small):
        c = frag_cluster(rnd, n_nodes=rnd.choice([4, 6, 8]), per_block=rnd.choice([2, 4]))
        groups = frag_groups(rnd, rnd.choice([6, 8, 10]))
        res = _score(c, groups, rnd)
        t0 = time.perf_counter()
        opt_n = optimum(c, groups, "count")
        opt_g = optimum(c, groups, "gpus")
        t_opt += time.perf_counter() - t0
        rows["opt_n"].append(opt_n)
        rows["opt_g"].append(opt_g)
        _tally(rows, res, c, groups)
        rows["all_fit"].append(opt_n == len(groups))
        rows["planner_all"].append(opt_n == len(groups) and len(res["planner"][0]) == len(groups))
    n = small
    instances_fit, all_fit = sum(rows["all_fit"]), sum(rows["planner_all"])
    print(
        f"\n== quality, small fragmented clusters: {n} seeded instances (4-8 nodes x 8 GPUs, 60% partly used, "
        "blocks of 2-4; 6-10 groups of 1-16 GPUs)"
    )
    print(
        "                      groups placed   GPUs placed   stranded   gangs split   GPUs held by dead gangs   "
        "at optimum (groups / GPUs)"
    )
    for label in labels:
        at_n = sum(a == b for a, b in zip(rows[label, "n"], rows["opt_n"], strict=True))
        at_g = sum(a == b for a, b in zip(rows[label, "g"], rows["opt_g"], strict=True))
        print(
            f"   {label:18s} {sum(rows[label, 'n']):13d}   {sum(rows[label, 'g']):11d}   "
            f"{sum(rows[label, 'stranded']):8d}   {sum(rows[label, 'split']):11d}   "
            f"{sum(rows[label, 'held']):23d}   {at_n:4d} / {at_g:4d}"
        )
    print(
        f"   optimum (exact)    {sum(rows['opt_n']):13d}   {sum(rows['opt_g']):11d}          -             -          "
        "               -"
        f"   (max groups, max GPUs: solved separately, {t_opt:.1f} s)"
    )
    print(
        f"   Every group placed in {all_fit} of the {instances_fit} instances where all groups fit. Largest first "
        "trades group count"
    )
    print("   for GPUs: a count-optimal packing drops large groups to fit more small ones.")

    rows = defaultdict(list)
    for _ in range(large):
        c = frag_cluster(rnd, n_nodes=512, per_block=rnd.choice([4, 8, 16]))
        groups = frag_groups(rnd, 700)
        res = _score(c, groups, rnd)
        rows["ub_n"].append(upper_bound_count(c, groups))
        rows["ub_g"].append(min(sum(c.free), sum(g.gpus for g in groups)))
        _tally(rows, res, c, groups)
    print(
        f"\n== quality, large fragmented clusters: {large} seeded instances (512 nodes x 8 GPUs, blocks of 4-16; "
        "700 groups asking ~20% more GPUs than are free)"
    )
    print("                      groups placed   GPUs placed   stranded   gangs split   GPUs held by dead gangs")
    for label in labels:
        print(
            f"   {label:18s} {sum(rows[label, 'n']):13d}   {sum(rows[label, 'g']):11d}   "
            f"{sum(rows[label, 'stranded']):8d}   {sum(rows[label, 'split']):11d}"
            f"   {sum(rows[label, 'held']):23d}"
        )
    print(
        f"   upper bound        {sum(rows['ub_n']):13d}   {sum(rows['ub_g']):11d}          -             -            "
        "             -"
        "   (groups: smallest first within the free GPUs; GPUs: min(free, asked))"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="fewer runs and instances")
    args = ap.parse_args()
    bench_speed(args.seed, runs=3 if args.quick else 7)
    bench_quality(args.seed, small=60 if args.quick else 300, large=3 if args.quick else 10)


if __name__ == "__main__":
    main()
