"""The CPU engine profile: spec.engine.device CPU renders a KV cache sized from the pod's memory
and nothing of a GPU (flags, resources, tolerations), and refuses what does not fit."""

from __future__ import annotations

import pytest
from agentfleet_contract import ModelReplicaSet

from agentfleet.capacity import CPU_RESERVE, GiB, assess, cpu_kv_cache_gib
from agentfleet.placement import Assignment
from agentfleet.render import render_pod
from agentfleet.render.common import RenderError

QWEN_05B_BF16 = 494_032_768 * 2  # the catalog's parameter count, 16-bit weights


def cpu_mrs(memory: str = "7Gi", device: str = "CPU", **engine: object) -> ModelReplicaSet:
    return ModelReplicaSet.model_validate(
        {
            "apiVersion": "agentfleet.io/v1alpha1",
            "kind": "ModelReplicaSet",
            "metadata": {"name": "coder", "namespace": "serving", "uid": "u-1"},
            "spec": {
                "model": {"name": "/models-cache/hf/qwen2.5-coder-0.5b-instruct", "servedName": "qwen-coder"},
                "engine": {"device": device, "memory": memory, "maxModelLen": 4096, **engine},
            },
        }
    )


def pod_of(mrs: ModelReplicaSet) -> dict:
    return render_pod(mrs, Assignment("serving/coder-abcde-0", "serving/coder", ("cpu-node-0",), 1), 0)


@pytest.mark.parametrize(
    ("memory", "weights", "want"),
    [
        (7 * GiB, QWEN_05B_BF16, 2),  # 7 - 0.92 - 4 = 2.08: whole GiB only
        (8 * GiB, QWEN_05B_BF16, 3),
        (5 * GiB, QWEN_05B_BF16, 0),  # 0.08 GiB left: nothing to serve with
        (4 * GiB, 0, 0),
        (5 * GiB, 0, 1),
        (3 * GiB, QWEN_05B_BF16, 0),  # below the reserve: never negative
    ],
)
def test_cpu_kv_cache_is_memory_minus_weights_and_reserve_in_whole_gib(memory: int, weights: int, want: int) -> None:
    assert CPU_RESERVE == 4 * GiB
    assert cpu_kv_cache_gib(memory, weights) == want


def test_cpu_pod_carries_the_kv_space_and_no_gpu() -> None:
    pod = pod_of(cpu_mrs())
    c = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert not any(a.startswith("--gpu-memory-utilization") for a in c["args"])
    assert c["resources"] == {"requests": {"cpu": "8", "memory": "7Gi"}, "limits": {"memory": "23Gi"}}
    assert pod["spec"]["tolerations"] == []
    (term,) = pod["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ]
    assert "matchExpressions" not in term  # no GPU product label asked for
    assert "nvidia" not in str(pod)


def test_gpu_default_is_unchanged() -> None:
    pod = pod_of(cpu_mrs(memory="64Gi", device="GPU"))
    c = pod["spec"]["containers"][0]
    assert "--gpu-memory-utilization" in c["args"]
    assert "VLLM_CPU_KVCACHE_SPACE" not in {e["name"] for e in c["env"]}
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pod["spec"]["tolerations"][0]["key"] == "nvidia.com/gpu"


def test_cpu_pod_that_does_not_fit_is_refused_with_the_fix() -> None:
    with pytest.raises(RenderError, match=r"spec.engine.memory 5Gi leaves no KV cache.*at least 6Gi"):
        pod_of(cpu_mrs(memory="5Gi"))
    a = assess(cpu_mrs(memory="5Gi").spec)
    assert not a.ok and "raise spec.engine.memory to at least 6Gi" in a.errors[0]


def test_cpu_profile_of_an_unknown_model_asks_for_its_geometry() -> None:
    mrs = cpu_mrs()
    mrs.spec.model.name = "/models-cache/hf/some-model"
    with pytest.raises(RenderError, match="set spec.model.geometry"):
        pod_of(mrs)


def test_cpu_assessment_reports_the_kv_tokens_the_space_holds() -> None:
    a = assess(cpu_mrs().spec)
    assert a.ok and a.capacity is not None
    # Qwen2.5-0.5B: 24 layers x 2 KV heads x 64 dims x 2 (K and V) x 2 bytes = 12 KiB a token.
    assert a.capacity.kv_bytes_per_token == 12 * 1024
    assert a.capacity.kv_free_bytes == 2 * GiB
    assert a.capacity.kv_tokens == 2 * GiB // (12 * 1024) // 16 * 16
    too_long = assess(cpu_mrs(memory="5Gi", maxModelLen=4096).spec)
    assert not too_long.ok


def test_switching_device_rolls_the_replicas() -> None:
    # (Adding the field with its GPU default rolls nothing: the golden pods' spec-hash is unchanged.)
    from agentfleet.render.modelreplicaset import spec_hash

    assert spec_hash(cpu_mrs().spec) != spec_hash(cpu_mrs(device="GPU").spec)
