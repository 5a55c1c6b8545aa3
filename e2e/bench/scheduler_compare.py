#!/usr/bin/env python3
"""The placement planner vs the real kube-scheduler, on the same kwok cluster (prints figures;
not a test).

For seeded fragmented clusters (the generator of placement_bench.py: 60% of the nodes partly
used, blocks of 2-4 nodes) and seeded groups (1-16 GPUs; a 16-GPU group is a gang of two 8-GPU
pods that counts only if both land in one topology block):

  kube-scheduler  the groups' pods, created one at a time in arrival order with nothing but GPU
                  requests (plus the toleration and node selector that keep them on this
                  benchmark's own nodes), bound by the real kube-scheduler with its default
                  profile and scoring; each pod is left to bind or be marked Unschedulable before
                  the next one comes. A gang's pods carry what a user would write to keep a gang
                  in one topology block: required pod affinity to the gang's own label on the
                  block label (the first pod, matching its own term, may go anywhere; the rest
                  follow it or stay Pending). No all-or-nothing: a gang whose second pod does not
                  fit keeps the GPUs of the first.
  planner         placement.plan() on the live inventory (inventory_from_k8s of the same nodes and
                  pods); its plan is then handed to the same kube-scheduler as the operator does
                  (each pod pinned by required node affinity), and what bound is measured like the
                  scheduler's own bindings: groups up, gangs split, GPUs held by dead gangs.
  optimum         exact (max groups; max GPUs) by exhaustive search from placement_bench.py on the
                  small instances, an upper bound on the large one.

Fragmentation is made of real pods: one "filler" pod per partly used node, bound directly.

    .venv/bin/python -m e2e.bench.scheduler_compare [--small 8] [--large 1] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter, defaultdict

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from agentfleet.placement import ReplicaNeeds, ReplicaRequest, Toleration, inventory_from_k8s, plan
from e2e.bench import placement_bench as pb
from e2e.harness import operator as fx
from e2e.harness.cluster import bench_namespace, cluster_up
from e2e.harness.poll import poll

GPU = "nvidia.com/gpu"
POOL_LABEL = fx.POOL_LABEL
BLOCK_LABEL = "agentfleet.io/topology-block"


class Bench:
    def __init__(self, cluster, ns: str, pool) -> None:
        self.cluster = cluster
        self.ns = ns
        self.pool = pool
        self.core = k8s.CoreV1Api(k8s_config.new_client_from_config(config_file=cluster.kubeconfig))

    # --- objects ---

    def pod(
        self,
        name: str,
        gpus: int,
        inst: str,
        role: str,
        *,
        node: str | None = None,
        pinned: str | None = None,
        gang: str | None = None,
    ) -> dict:
        spec: dict = {
            "containers": [
                {
                    "name": "c",
                    "image": "registry.invalid/agentfleet/sim:latest",
                    "resources": {"requests": {GPU: str(gpus)}, "limits": {GPU: str(gpus)}},
                }
            ],
            "tolerations": [{"operator": "Exists", "effect": "NoSchedule"}],
            "nodeSelector": {POOL_LABEL: self.ns},
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 0,
        }
        if node:
            spec["nodeName"] = node
        if pinned:
            spec["affinity"] = {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [
                            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [pinned]}]}
                        ]
                    }
                }
            }
        labels = {"bench-instance": inst, "bench-role": role}
        if gang:
            labels["bench-gang"] = gang
            spec["affinity"] = {
                "podAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": [
                        {
                            "labelSelector": {"matchLabels": {"bench-instance": inst, "bench-gang": gang}},
                            "topologyKey": BLOCK_LABEL,
                        }
                    ]
                }
            }
        return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": labels}, "spec": spec}

    def outcome(self, name: str, timeout: float = 30) -> str | None:
        """The node the pod was bound to, or None once the scheduler marks it Unschedulable."""

        def decided() -> tuple[str | None] | None:
            p = self.core.read_namespaced_pod(name, self.ns)
            if p.spec.node_name:
                return (p.spec.node_name,)
            unschedulable = any(
                c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable"
                for c in p.status.conditions or []
            )
            return (None,) if unschedulable else None  # a 1-tuple: "Unschedulable" is an answer too

        return poll(decided, timeout, f"pod {name} to be bound or marked Unschedulable", 0.05)[0]

    def delete_role(self, inst: str, role: str) -> None:
        self.core.delete_collection_namespaced_pod(
            self.ns, label_selector=f"bench-instance={inst},bench-role={role}", grace_period_seconds=0
        )
        self.cluster.wait_for(
            lambda: (
                not self.core.list_namespaced_pod(
                    self.ns, label_selector=f"bench-instance={inst},bench-role={role}"
                ).items
            ),
            timeout=60,
            interval=0.2,
            desc=f"{role} pods gone",
        )

    # --- one instance ---

    def nodes_for(self, inst: str, c: pb.Cluster) -> list[str]:
        real: list[str | None] = [None] * len(c.names)
        by_block: dict[str, list[int]] = defaultdict(list)
        for i, b in enumerate(c.block):
            by_block[b].append(i)
        for b, members in sorted(by_block.items()):
            names = self.pool.add(f"{inst}{b}", count=len(members), block=f"{self.ns}-{inst}-{b}")
            for i, n in zip(members, names, strict=True):
                real[i] = n
        return [n for n in real if n]

    def run(self, inst: str, c: pb.Cluster, groups: list[pb.Group]) -> dict:
        real = self.nodes_for(inst, c)
        for i, n in enumerate(real):
            used = c.cap[i] - c.free[i]
            if used:
                self.core.create_namespaced_pod(self.ns, self.pod(f"{inst}-fill-{i}", used, inst, "filler", node=n))
        self.cluster.wait_for(
            lambda: all(
                p.status.phase == "Running"
                for p in self.core.list_namespaced_pod(
                    self.ns, label_selector=f"bench-instance={inst},bench-role=filler"
                ).items
            ),
            timeout=60,
            interval=0.2,
            desc="filler pods running",
        )
        idx = {n: i for i, n in enumerate(real)}

        # The real kube-scheduler, one pod at a time in arrival order.
        free = list(c.free)
        k_bound: dict[str, list[int]] = {}
        for g in groups:
            pods, per = pb.pods_of(g)
            bound = k_bound.setdefault(g.key, [])
            gang = g.key.split("/")[1] if pods > 1 else None
            for j in range(pods):
                name = f"{inst}-k-{g.key.split('/')[1]}-{j}"
                self.core.create_namespaced_pod(self.ns, self.pod(name, per, inst, "kube", gang=gang))
                node = self.outcome(name)
                if node is not None:
                    bound.append(idx[node])
                    free[idx[node]] -= per
        k_placed, split, wasted = pb.audit(c, groups, k_bound)
        k_free = free
        self.delete_role(inst, "kube")

        # The planner on the live inventory, then its plan through the same scheduler.
        live_nodes = self.cluster.json("get", "nodes")["items"]
        live_pods = self.cluster.json("get", "pods", "-A")["items"]
        inventory = inventory_from_k8s(live_nodes, live_pods)
        tol = (Toleration(key=POOL_LABEL, operator="Exists", effect="NoSchedule"),)
        reqs = [
            ReplicaRequest(
                g.key,
                ReplicaNeeds(
                    owner="bench/x",
                    gpus=g.gpus,
                    tensor_parallel=g.tp,
                    product=fx.H100,
                    node_selector=((POOL_LABEL, self.ns),),
                    tolerations=tol,
                    spread_across="None",
                ),
            )
            for g in groups
        ]
        t0 = time.perf_counter()
        p = plan(inventory, reqs)
        plan_ms = (time.perf_counter() - t0) * 1e3
        p_free = list(c.free)
        names = []
        for a in p.placed:
            for j, n in enumerate(a.nodes):
                name = f"{inst}-p-{a.key.split('/')[1]}-{j}"
                self.core.create_namespaced_pod(self.ns, self.pod(name, a.gpus_per_node, inst, "planned", pinned=n))
                names.append((a.key, a.gpus_per_node, name, n))
        # Measured from what bound, like the scheduler's own row (not taken from the plan).
        p_bound: dict[str, list[int]] = {}
        binds = 0
        for key, per, name, n in names:
            node = self.outcome(name)
            if node is not None:
                p_bound.setdefault(key, []).append(idx[node])
                p_free[idx[node]] -= per
                binds += node == n
        p_set, p_split, p_wasted = pb.audit(c, groups, p_bound)
        self.delete_role(inst, "planned")
        self.delete_role(inst, "filler")
        self.cluster.run("delete", "nodes", *real, "--wait=true", timeout=120)
        return {
            "k_set": k_placed,
            "k_free": k_free,
            "split": split,
            "wasted": wasted,
            "p_set": p_set,
            "p_free": p_free,
            "p_split": p_split,
            "p_wasted": p_wasted,
            "plan_pods": len(names),
            "plan_bound": binds,
            "plan_ms": plan_ms,
        }


def report(title: str, rows: list[dict], exact: bool) -> None:
    tot = Counter()
    at_opt = Counter()
    for r in rows:
        g = r["gpus"]
        tot["k_n"] += len(r["k_set"])
        tot["p_n"] += len(r["p_set"])
        tot["k_g"] += sum(g[k] for k in r["k_set"])
        tot["p_g"] += sum(g[k] for k in r["p_set"])
        tot["opt_n"] += r["opt_n"]
        tot["opt_g"] += r["opt_g"]
        tot["k_str"] += r["k_stranded"]
        tot["p_str"] += r["p_stranded"]
        tot["split"] += r["split"]
        tot["wasted"] += r["wasted"]
        tot["p_split"] += r["p_split"]
        tot["p_wasted"] += r["p_wasted"]
        tot["groups"] += len(g)
        tot["plan_pods"] += r["plan_pods"]
        tot["plan_bound"] += r["plan_bound"]
        at_opt["k_n"] += len(r["k_set"]) == r["opt_n"]
        at_opt["p_n"] += len(r["p_set"]) == r["opt_n"]
        at_opt["k_g"] += sum(g[k] for k in r["k_set"]) == r["opt_g"]
        at_opt["p_g"] += sum(g[k] for k in r["p_set"]) == r["opt_g"]
    n = len(rows)
    print(f"\n== {title}: {n} instance(s), {tot['groups']} groups")
    print(
        "                      groups placed   GPUs placed   stranded   gangs split   GPUs held by dead gangs"
        + ("   at optimum (groups / GPUs)" if exact else "")
    )
    opt_cols = lambda a, b: f"   {a:4d} / {b:4d}" if exact else ""  # noqa: E731
    print(
        f"   planner            {tot['p_n']:13d}   {tot['p_g']:11d}   {tot['p_str']:8d}   {tot['p_split']:11d}   "
        f"{tot['p_wasted']:23d}{opt_cols(at_opt['p_n'], at_opt['p_g'])}"
    )
    print(
        f"   kube-scheduler     {tot['k_n']:13d}   {tot['k_g']:11d}   {tot['k_str']:8d}   {tot['split']:11d}   "
        f"{tot['wasted']:23d}{opt_cols(at_opt['k_n'], at_opt['k_g'])}"
    )
    label = "optimum (exact)   " if exact else "upper bound       "
    print(f"   {label} {tot['opt_n']:13d}   {tot['opt_g']:11d}          -             -                         -")
    print(
        f"   the planner's plan, pinned by node affinity: {tot['plan_bound']} of {tot['plan_pods']} pods bound by "
        "the kube-scheduler where planned"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--small", type=int, default=8, help="small instances (exact optimum)")
    ap.add_argument("--large", type=int, default=1, help="large instances (upper bound)")
    ap.add_argument("--large-nodes", type=int, default=48)
    ap.add_argument("--large-groups", type=int, default=60)
    args = ap.parse_args()
    rnd = random.Random(args.seed)
    with cluster_up() as cluster, bench_namespace(cluster, "bench-sched") as (ns, pool):
        bench = Bench(cluster, ns, pool)
        print(
            f"seed {args.seed}; kube-scheduler {cluster.k8s_version}, default profile, gang pods with required "
            f"pod affinity on {BLOCK_LABEL}; kwok nodes x 8 GPUs"
        )
        small = []
        for k in range(args.small):
            c = pb.frag_cluster(rnd, n_nodes=rnd.choice([4, 6, 8]), per_block=rnd.choice([2, 4]))
            groups = pb.frag_groups(rnd, rnd.choice([6, 8, 10]))
            r = bench.run(f"s{k}", c, groups)
            r["gpus"] = {g.key: g.gpus for g in groups}
            r["opt_n"] = pb.optimum(c, groups, "count")
            r["opt_g"] = pb.optimum(c, groups, "gpus")
            r["k_stranded"] = pb.stranded(c, groups, r["k_set"], r["k_free"])
            r["p_stranded"] = pb.stranded(c, groups, r["p_set"], r["p_free"])
            small.append(r)
            print(
                (
                    f"   s{k}: {len(c.names)} nodes, {len(groups)} groups: planner {len(r['p_set'])}, kube-scheduler "
                    f"{len(r['k_set'])}, optimum {r['opt_n']} groups"
                ),
                flush=True,
            )
        if small:
            report("small fragmented clusters (4-8 nodes, blocks of 2-4; 6-10 groups of 1-16 GPUs)", small, exact=True)
        large = []
        for k in range(args.large):
            c = pb.frag_cluster(rnd, n_nodes=args.large_nodes, per_block=rnd.choice([4, 8]))
            groups = pb.frag_groups(rnd, args.large_groups)
            r = bench.run(f"l{k}", c, groups)
            r["gpus"] = {g.key: g.gpus for g in groups}
            r["opt_n"] = pb.upper_bound_count(c, groups)
            r["opt_g"] = min(sum(c.free), sum(r["gpus"].values()))
            r["k_stranded"] = pb.stranded(c, groups, r["k_set"], r["k_free"])
            r["p_stranded"] = pb.stranded(c, groups, r["p_set"], r["p_free"])
            large.append(r)
            print(f"   l{k}: planned in {r['plan_ms']:.1f} ms", flush=True)
        if large:
            report(
                f"large fragmented cluster ({args.large_nodes} nodes, blocks of 4-8; {args.large_groups} groups)",
                large,
                exact=False,
            )
        print("\n   stranded: unplaced groups that would still fit in what is left free (the planner's goal: 0).")


if __name__ == "__main__":
    main()
