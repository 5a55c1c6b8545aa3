"""A spec.engine.device CPU set is placed on CPU nodes: one slot per replica, a slot being the pod's
CPU and memory requests out of what the node's allocatable has left; GPU nodes (tainted) are not used
and no GPU is recorded."""

from __future__ import annotations

from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec

from agentfleet.placement import (
    assignment_from_status,
    inventory_for,
    needs_for,
    placement_status,
    plan,
    requests_for,
)


def cpu_spec(cpu: str = "1", memory: str = "7Gi") -> ModelReplicaSetSpec:
    return ModelReplicaSetSpec.model_validate(
        {
            "model": {"name": "pvc://models/hf/qwen2.5-coder-0.5b-instruct", "servedName": "qwen-coder"},
            "engine": {"device": "CPU", "cpu": cpu, "memory": memory, "maxModelLen": 4096},
        }
    )


def cpu_node(name: str, cpu: str = "2", memory: str = "24Gi") -> dict:
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def gpu_node(name: str) -> dict:
    n = cpu_node(name, cpu="96", memory="1Ti")
    n["spec"]["taints"] = [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]
    n["status"]["allocatable"]["nvidia.com/gpu"] = "8"
    return n


def pod_on(node: str, cpu: str, memory: str, phase: str = "Running") -> dict:
    return {
        "metadata": {"name": f"other-{node}-{cpu}", "namespace": "x"},
        "spec": {"nodeName": node, "containers": [{"resources": {"requests": {"cpu": cpu, "memory": memory}}}]},
        "status": {"phase": phase},
    }


def place(spec: ModelReplicaSetSpec, nodes: list[dict], pods: list[dict], n: int):
    d = needs_for("serving", "coder", spec)
    inv = inventory_for(d, nodes, pods)
    return plan(inv, requests_for("serving", "coder", spec, [f"coder-r{i}" for i in range(n)]))


def test_cpu_replicas_go_to_the_cpu_node_as_many_as_its_cpu_and_memory_hold() -> None:
    # 2 CPU / 24Gi, 1 CPU + 7Gi per replica: CPU is the bound, 2 replicas fit; the GPU node is never used.
    result = place(cpu_spec(), [gpu_node("gpu-0"), cpu_node("realnode")], [], 3)
    assert [a.nodes for a in result.placed] == [("realnode",), ("realnode",)]
    assert all(a.gpus == 0 for a in result.placed)
    (left,) = result.unplaced
    assert "1 CPU and 7 GiB of memory" in left.message


def test_pods_already_on_the_node_take_their_requests() -> None:
    # 1.5 CPU taken by a running pod leaves 0.5 CPU: no slot; a finished pod takes nothing.
    spec = cpu_spec(cpu="500m", memory="6Gi")
    pods = [pod_on("realnode", "1500m", "1Gi"), pod_on("realnode", "2", "20Gi", phase="Succeeded")]
    result = place(spec, [cpu_node("realnode")], pods, 2)
    assert [a.nodes for a in result.placed] == [("realnode",)]
    # Memory binds too: 24Gi - 20Gi held leaves no 6Gi slot.
    result = place(spec, [cpu_node("realnode")], [pod_on("realnode", "100m", "20Gi")], 1)
    assert not result.placed and result.unplaced


def test_a_node_too_small_for_one_replica_is_named_in_the_reason() -> None:
    result = place(cpu_spec(cpu="4"), [cpu_node("realnode")], [], 1)
    (left,) = result.unplaced
    assert left.reason == "NoEligibleNodes"
    assert "spec.engine.cpu and spec.engine.memory" in left.message


def test_a_cpu_placement_round_trips_through_status_holding_no_gpu() -> None:
    (a,) = place(cpu_spec(), [cpu_node("realnode")], [], 1).placed
    back = assignment_from_status("serving", "coder", placement_status(a).wire())
    assert back is not None and back.nodes == ("realnode",) and back.gpus == 0


def test_the_gpus_per_replica_column_of_a_cpu_set_is_zero() -> None:
    from agentfleet.controllers.modelreplicaset.status import base

    assert base(1, "coder", cpu_spec())["gpusPerReplica"] == 0
