"""ModelReplicaSet children: the Job that fills the model cache claim before replicas start.

Pure; agentfleet.render.modelreplicaset re-exports it.
"""

from __future__ import annotations

import hashlib
from typing import Any

from agentfleet_contract.modelreplicaset import ModelReplicaSet, ModelReplicaSetSpec

from agentfleet.capacity import cpu_kv_cache
from agentfleet.render.common import RenderError, restricted_container
from agentfleet.render.modelreplicaset_names import CACHE_PATH, MANAGED_BY, TMP_PATH, _meta, _name, _tolerations

# --- The model cache's fill Job ---------------------------------------------------------------

CACHE_FILL_LABEL = "agentfleet.io/model-cache"  # on the fill Job and its pod: the ModelReplicaSet it fills for
# What the fill runs, in the engine's own image (vLLM ships huggingface_hub). HF_HOME is the one the
# replicas use, so vLLM finds the snapshot in its hub cache and downloads nothing. `original/` and
# *.pth hold the checkpoint in Meta's own format, which vLLM does not read (Llama repositories).
FILL_SCRIPT = (
    "import os\n"
    "from huggingface_hub import snapshot_download\n"
    "path = snapshot_download(repo_id=os.environ['AGENTFLEET_MODEL'], revision=os.environ.get('AGENTFLEET_REVISION') "
    "or None,\n"
    "                         ignore_patterns=['original/*', '*.pth'])\n"
    "print('filled', path)\n"
)


def device_and_token_env(spec: ModelReplicaSetSpec) -> list[dict[str, Any]]:
    """The environment the replicas and the cache fill Job share: the CPU profile's KV cache and the
    model hub token, by the same rules in both (one place, so the two pods cannot disagree)."""
    env: list[dict[str, Any]] = []
    if spec.engine.device == "CPU":
        space, problem = cpu_kv_cache(spec)
        if problem is not None:
            raise RenderError(problem)
        # vLLM's CPU backend reserves this much KV cache (GiB) instead of a share of the host's RAM.
        env.append({"name": "VLLM_CPU_KVCACHE_SPACE", "value": str(space)})
    if spec.model.hf_token_secret_ref:
        ref = spec.model.hf_token_secret_ref
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    return env


def is_hub_model(name: str) -> bool:
    """A Hugging Face repository id (org/name), not a URI or a path: the only source a fill downloads."""
    return "://" not in name and not name.startswith("/")


def cache_model(spec: ModelReplicaSetSpec) -> str | None:
    """The model@revision a fill puts in spec.engine.modelCache, or None when no fill applies: no
    claim, fill off, or a source that is not the Hub (object stores are streamed, paths are local)."""
    mc = spec.engine.model_cache
    if not mc.claim_name or not mc.fill or not is_hub_model(spec.model.name):
        return None
    return f"{spec.model.name}@{spec.model.revision or 'main'}"


def cache_job_name(mrs: str, model: str) -> str:
    """One Job per ModelReplicaSet and model revision; at most 57 characters, so the job-name label
    the Job controller puts on its pods stays a valid label value."""
    return f"{mrs[:40]}-cache-{hashlib.sha256(f'{mrs}/{model}'.encode()).hexdigest()[:10]}"


def render_cache_job(mrs: ModelReplicaSet) -> dict[str, Any] | None:
    """The Job that fills the model cache claim with the model's weights, or None (cache_model)."""
    spec = mrs.spec
    model = cache_model(spec)
    if model is None:
        return None
    name = _name(mrs)
    # Not the set's own label: its pod is no replica, and every selector of the set's pods (the scale
    # subresource's, the PDB's, the operator's pod listing) goes by that label.
    labels = {
        "app.kubernetes.io/name": "vllm",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": "model-cache-fill",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        CACHE_FILL_LABEL: name,
    }
    env: list[dict[str, Any]] = [
        {"name": "HF_HOME", "value": f"{CACHE_PATH}/huggingface"},
        {"name": "HOME", "value": TMP_PATH},
        {"name": "AGENTFLEET_MODEL", "value": spec.model.name},
        {"name": "AGENTFLEET_REVISION", "value": spec.model.revision or ""},
    ]
    env += device_and_token_env(spec)
    container = {
        "name": "fill",
        "image": spec.engine.image,
        "command": ["python3", "-c", FILL_SCRIPT],
        "env": env,
        # A download: network and disk bound. The memory limit bounds what a misbehaving client holds.
        "resources": {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}},
        "volumeMounts": [{"name": "model-cache", "mountPath": CACHE_PATH}, {"name": "tmp", "mountPath": TMP_PATH}],
        "securityContext": restricted_container(),
    }
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        # The replicas' uid and group: the files it writes are theirs to read (and fsGroup makes the
        # claim writable to it).
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": spec.engine.run_as_user,
            "runAsGroup": spec.engine.run_as_user,
            "fsGroup": spec.engine.run_as_user,
            "fsGroupChangePolicy": "OnRootMismatch",
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        # On the nodes the replicas may use: the engine image it pulls is then there for them.
        "tolerations": _tolerations(spec),
        "containers": [container],
        "volumes": [
            {"name": "model-cache", "persistentVolumeClaim": {"claimName": spec.engine.model_cache.claim_name}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}},
        ],
    }
    if spec.placement.node_selector:
        pod_spec["nodeSelector"] = dict(spec.placement.node_selector)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(mrs, cache_job_name(name, model), labels),
        "spec": {
            "backoffLimit": 3,
            "template": {"metadata": {"labels": labels}, "spec": pod_spec},
        },
    }
