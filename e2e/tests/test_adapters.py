"""LoRA adapters of a ModelReplicaSet on the real control plane: the operator brings every ready
replica to spec.adapters through the adapter API answering at the replica pod's own IP (the
simulator's, which answers as vLLM's), and a change of the list reaches every replica on the pass
the change triggers, without a new pod."""

from __future__ import annotations

import json
import time

import pytest

from e2e.harness import operator as fx
from e2e.harness.operator import eventually
from e2e.tests.test_modelreplicaset import get_mrs, mrs_manifest, pod_sims, replica_pods, settled  # noqa: F401 - pod_sims is a fixture

crds, operator, gpu_pool = fx.crds, fx.operator, fx.gpu_pool

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(150)]

A = {"name": "sql", "source": "/models-cache/adapters/sql"}
B = {"name": "chat", "source": "/models-cache/adapters/chat", "maxRank": 32}


def test_adapters_follow_the_spec_on_every_replica_without_a_restart(
    operator,
    gpu_pool,
    namespace,
    cluster,
    pod_sims,  # noqa: F811
) -> None:
    ns = namespace
    gpu_pool.add("h100", count=2)
    cluster.apply(mrs_manifest("lora", gpu_pool, replicas=2, adapters=[A]), ns)
    eventually(cluster, operator, settled(cluster, ns, "lora", 2), timeout=45, desc="2 replicas Ready")
    pods = replica_pods(cluster, ns, "lora")
    args = pods[0]["spec"]["containers"][0]["args"]
    assert "--enable-lora" in args and args[args.index("--max-lora-rank") + 1] == "16"
    for p in pods:
        pod_sims.serve(
            p["metadata"]["labels"]["agentfleet.io/replica"], p["status"]["podIP"], 8000, "lora", max_loras=2
        )
    names = {p["metadata"]["name"] for p in pods}

    def holding(want: set[str]):
        def check() -> dict | None:
            sims_ok = all(set(s.replica.adapters.registered) == want for s in pod_sims.servers.values())
            obj = get_mrs(cluster, ns, "lora")
            status_ok = all(set(p.get("adapters") or []) == want for p in obj["status"]["placements"])
            return obj if sims_ok and status_ok else None

        return check

    # The replicas came up empty (a restarted vLLM holds no adapter): the next pass fills them.
    cluster.run("-n", ns, "annotate", "mrs", "lora", "e2e/poke=1")
    eventually(cluster, operator, holding({"sql"}), timeout=30, desc="sql on both replicas")

    started = time.monotonic()
    cluster.run(
        "-n",
        ns,
        "patch",
        "mrs",
        "lora",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"adapters": [A, {**B, "maxRank": 16}]}}),
    )
    eventually(cluster, operator, holding({"sql", "chat"}), timeout=30, desc="chat added on both replicas")
    added = time.monotonic() - started
    started = time.monotonic()
    cluster.run(
        "-n",
        ns,
        "patch",
        "mrs",
        "lora",
        "--type=merge",
        "-p",
        json.dumps({"spec": {"adapters": [{**B, "maxRank": 16}]}}),
    )
    eventually(cluster, operator, holding({"chat"}), timeout=30, desc="sql removed from both replicas")
    removed = time.monotonic() - started
    # Well within one resync (60 s): the change's own pass did it. And no pod was replaced.
    assert added < 30 and removed < 30, (added, removed)
    assert {p["metadata"]["name"] for p in replica_pods(cluster, ns, "lora")} == names
    print(f"adapter added on 2 replicas in {added:.1f} s, removed in {removed:.1f} s")
