"""Child objects of a ModelReplicaSet as plain dicts: vLLM pods, Services, a PodDisruptionBudget.

Pure: the controller applies what these functions return (server-side apply, one field manager).

Per replica, from its placement (agentfleet.placement.Assignment):
- one pod when the replica fits one node (role "server"), requesting TP x PP GPUs;
- a gang when it spans nodes: pod 0 is the leader (role "leader", runs the OpenAI server), the
  others are workers (role "worker"), each requesting its node's share of the GPUs. Gang pods
  never restart in place (restartPolicy Never): the controller restarts the whole group with
  backoff, because a lone restarted member cannot rejoin a running engine.
Every pod is pinned to its planned node by required node affinity (matchFields metadata.name), so
the kube-scheduler still binds it and still checks resources, taints and labels.

Multi-node launch follows vLLM's own documentation, docs/serving/parallelism_scaling.md
("Multi-node deployment"; docs.vllm.ai/en/latest/serving/parallelism_scaling/):
- Ray, the path the default image (v0.11) documents, as in its examples/online_serving/
  multi-node-serving.sh: the leader runs `ray start --head`, waits until the Ray cluster holds every
  GPU of the replica, then `vllm serve ... --distributed-executor-backend ray`; workers run
  `ray start --address=<leader>:6379 --block`. VLLM_HOST_IP is each pod's own IP, as the guide asks.
- Multiprocessing, documented for current vLLM: every pod runs `vllm serve` with
  `--nnodes N --node-rank i --master-addr <leader>`; workers add `--headless`. Newer vLLM images
  no longer pull in Ray by default, so spec.engine.multiNodeBackend picks between the two.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from agentfleet_contract.common import CONSENT_LABEL, CONSENT_VALUE
from agentfleet_contract.modelreplicaset import ModelReplicaSet, ModelReplicaSetSpec

from agentfleet.capacity import cpu_kv_cache, format_quantity, parse_quantity
from agentfleet.placement import GPU_PRODUCT_LABEL, MODELREPLICASET_LABEL, REPLICA_LABEL, Assignment, Toleration
from agentfleet.render.common import (
    API_KEY_KEY,
    DEFAULT_PEERS,
    MODEL_CLIENT_LABEL,
    ROUTINE_MODEL_CLIENT_LABEL,
    Peers,
    RenderError,
    api_key_ref,
    api_key_secret_name,
    child_meta,
    restricted_container,
)
from agentfleet.render.overlay import with_pod_template
from agentfleet.render.vllm import MASTER_PORT, MODEL_SOURCE_PATH, lora_rank, multi_node_backend, vllm_args

ROLE_LABEL = "agentfleet.io/role"
SERVING_LABEL = "agentfleet.io/serving"  # "false" takes a draining replica out of every Service
SPEC_HASH_LABEL = "agentfleet.io/spec-hash"
GANG_SIZE_LABEL = "agentfleet.io/gang-size"
MANAGED_BY = "agentfleet"

ROLE_SERVER = "server"
ROLE_LEADER = "leader"
ROLE_WORKER = "worker"

CONTAINER = "vllm"
HTTP_PORT_NAME = "http"
RAY_PORT = 6379
SHM_PATH = "/dev/shm"
CACHE_PATH = "/models-cache"
TMP_PATH = "/tmp"  # HOME, Ray's session files, Triton and torch scratch: the root filesystem is read-only
HEALTH_PATH = "/health"
# A deleted pod's endpoints leave Services while preStop sleeps, before SIGTERM reaches vLLM:
# kube-proxy and routers need a few seconds to observe the removal, or calls routed there are
# refused. The controller drains before it deletes; this covers evictions and node drains.
PRE_STOP_SLEEP_SECONDS = 15
TERMINATION_GRACE_SECONDS = 60


# --- Names and labels ------------------------------------------------------------------------

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def _check(value: str, what: str, pattern: re.Pattern[str] = _DNS_LABEL, limit: int = 63) -> str:
    if len(value) > limit or not pattern.match(value):
        raise RenderError(f"{what} {value!r} must be a DNS label of at most {limit} characters")
    return value


def service_name(mrs: str) -> str:
    """ClusterIP Service over ready replicas: http://<mrs>.<namespace>.svc:<port>/v1."""
    return mrs


def replicas_service_name(mrs: str) -> str:
    """Headless Service whose EndpointSlices list each ready replica's endpoint, for sticky routing."""
    return f"{mrs}-replicas"


def gang_service_name(mrs: str) -> str:
    """Headless Service that resolves gang leaders before they are ready, for workers to join."""
    return f"{mrs}-gang"


def pod_name(replica: str, index: int, gang: bool) -> str:
    return f"{replica}-{index}" if gang else replica


def common_labels(mrs: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "vllm",
        "app.kubernetes.io/instance": mrs,
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/managed-by": MANAGED_BY,
        MODELREPLICASET_LABEL: mrs,
    }


def serving_selector(mrs: str) -> dict[str, str]:
    """Pods that take requests: a replica's server or leader pod while it is not draining."""
    return {MODELREPLICASET_LABEL: mrs, SERVING_LABEL: "true"}


def selector_string(mrs: str) -> str:
    """status.selector for the scale subresource: one pod per replica (server or leader).

    Set-based `notin`, not `!=`: the API server converts this string to a LabelSelector for every
    /scale reader (kubectl scale, the HPA, the disruption controller), and that conversion
    (metav1.ParseToLabelSelector) refuses `!=`."""
    return f"{MODELREPLICASET_LABEL}={mrs},{ROLE_LABEL} notin ({ROLE_WORKER})"


def spec_hash(spec: ModelReplicaSetSpec) -> str:
    """Hash of the spec fields that shape a pod; a replica whose pods carry another hash is out of date.

    Replica count, autoscaling, routing and drain timing are left out: changing them must not roll pods.
    """
    engine = spec.engine.wire()
    # Whether a Job fills the cache changes no pod: toggling it (or adding the field) rolls nothing.
    engine.get("modelCache", {}).pop("fill", None)
    # The device field arrived with GPU as its default: adding it must not roll every existing replica.
    if engine.get("device") == "GPU":
        engine.pop("device")
    shaping = {
        "model": spec.model.wire(),
        "engine": engine,
        "gpu": spec.gpu.wire(),
        "placement": {
            "nodeSelector": spec.placement.node_selector,
            "tolerations": [t.wire() for t in spec.placement.tolerations],
            "priorityClassName": spec.placement.priority_class_name,
        },
        "startupTimeoutSeconds": spec.lifecycle.startup_timeout_seconds,
    }
    if spec.adapters:
        # Whether LoRA is on and the largest rank shape the pod; which adapters are loaded does not.
        shaping["lora"] = {"maxRank": lora_rank(spec)}
    else:
        engine.pop("maxLoras", None)
    if spec.pod_template is not None:
        # Only when set: the hash of every set without one stays what it was (no rollout on upgrade).
        shaping["podTemplate"] = spec.pod_template.wire()
    return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:10]


def _meta(
    mrs: ModelReplicaSet, name: str, labels: dict[str, str], annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    return child_meta(mrs, name, labels, annotations, namespace=mrs.metadata.get("namespace", "default"))


def _name(mrs: ModelReplicaSet) -> str:
    name = mrs.metadata.get("name", "")
    # The longest derived name, "<name>-replicas", must stay a DNS-1035 label (Service names).
    _check(replicas_service_name(name), "Service name", _DNS1035)
    return name


# --- Pods ------------------------------------------------------------------------------------


def _env(mrs: ModelReplicaSet, gang: bool) -> list[dict[str, Any]]:
    spec = mrs.spec
    env: list[dict[str, Any]] = [
        # Hugging Face downloads land on the cache volume, shared by restarts (and pods, with a PVC).
        {"name": "HF_HOME", "value": f"{CACHE_PATH}/huggingface"},
        # A non-root uid has no home in the image: everything vLLM writes under ~ goes to /tmp, and
        # its compile cache beside the weights (kept across restarts).
        {"name": "HOME", "value": TMP_PATH},
        {"name": "VLLM_CACHE_ROOT", "value": f"{CACHE_PATH}/vllm"},
        # vLLM refuses /v1 requests without this key (as `--api-key`, kept off the command line,
        # which any pod reader sees); the fleet's workers send it. Other routes (/health,
        # /metrics, /tokenize) stay open: the NetworkPolicy is what keeps other pods out.
        {
            "name": "VLLM_API_KEY",
            "valueFrom": {"secretKeyRef": api_key_ref(mrs.metadata.get("name", ""), spec.engine.api_key_secret_ref)},
        },
        # No usage reports from production pods; spec.engine.env may turn them back on.
        {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
    ]
    if spec.adapters:
        # vLLM's /v1/load_lora_adapter and /v1/unload_lora_adapter answer only with this set; the
        # operator calls them with the API key, and the NetworkPolicy admits only it and the workers.
        env.append({"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "True"})
    if spec.engine.device == "CPU":
        space, problem = cpu_kv_cache(spec)
        if problem is not None:
            raise RenderError(problem)
        # vLLM's CPU backend reserves this much KV cache (GiB) instead of a share of the host's RAM.
        env.append({"name": "VLLM_CPU_KVCACHE_SPACE", "value": str(space)})
    if spec.model.hf_token_secret_ref:
        ref = spec.model.hf_token_secret_ref
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
    if gang:
        # vLLM's multi-node guide: each node advertises its own reachable address.
        env.append({"name": "VLLM_HOST_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}})
    user = {v.name for v in spec.engine.env}
    return [v for v in env if v["name"] not in user] + [{"name": v.name, "value": v.value} for v in spec.engine.env]


def _volumes(spec: ModelReplicaSetSpec) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    e = spec.engine
    volumes: list[dict[str, Any]] = [
        # NCCL and vLLM's worker processes exchange tensors through shared memory; the container
        # runtime's 64 MiB default makes multi-GPU replicas crash or crawl.
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": e.shm_size}},
    ]
    volumes.append({"name": "tmp", "emptyDir": {"sizeLimit": "4Gi"}})
    mounts: list[dict[str, Any]] = [{"name": "dshm", "mountPath": SHM_PATH}, {"name": "tmp", "mountPath": TMP_PATH}]
    if e.model_cache.claim_name:
        volumes.append({"name": "model-cache", "persistentVolumeClaim": {"claimName": e.model_cache.claim_name}})
    else:
        volumes.append({"name": "model-cache", "emptyDir": {"sizeLimit": e.model_cache.size_limit}})
    mounts.append({"name": "model-cache", "mountPath": CACHE_PATH})
    if spec.model.name.startswith("pvc://"):
        claim = spec.model.name[len("pvc://") :].split("/", 1)[0]
        volumes.append({"name": "model-source", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}})
        mounts.append({"name": "model-source", "mountPath": MODEL_SOURCE_PATH, "readOnly": True})
    return volumes, mounts


def _resources(spec: ModelReplicaSetSpec, gpus: int) -> dict[str, Any]:
    e = spec.engine
    gpu = str(gpus)
    # /dev/shm is memory-backed and counted against the container's memory limit, so the limit is
    # the request plus the shared-memory size. No CPU limit: throttling the tokenizer and scheduler
    # loop stalls the GPUs.
    limit = format_quantity(int(parse_quantity(e.memory) + parse_quantity(e.shm_size)))
    if e.device == "CPU":
        return {"requests": {"cpu": e.cpu, "memory": e.memory}, "limits": {"memory": limit}}
    return {
        "requests": {"cpu": e.cpu, "memory": e.memory, spec.gpu.resource_name: gpu},
        "limits": {"memory": limit, spec.gpu.resource_name: gpu},
    }


def _probes(spec: ModelReplicaSetSpec) -> dict[str, Any]:
    def get() -> dict[str, Any]:
        return {"path": HEALTH_PATH, "port": HTTP_PORT_NAME}

    period = 10
    return {
        # Loading weights (and, for gangs, waiting for workers) may take startupTimeoutSeconds; liveness
        # only starts after the first success, so a slow load is never killed as a hang.
        "startupProbe": {
            "httpGet": get(),
            "periodSeconds": period,
            "timeoutSeconds": 5,
            "failureThreshold": -(-spec.lifecycle.startup_timeout_seconds // period),
        },
        "readinessProbe": {"httpGet": get(), "periodSeconds": 5, "timeoutSeconds": 5, "failureThreshold": 3},
        # /health answers once the engine loop is alive; under a full batch it may answer slowly.
        "livenessProbe": {"httpGet": get(), "periodSeconds": 15, "timeoutSeconds": 10, "failureThreshold": 4},
    }


def _tolerations(spec: ModelReplicaSetSpec) -> list[dict[str, Any]]:
    # The GPU taint (keyed by the GPU resource) is tolerated always on GPU, never on CPU (a CPU replica
    # has no business on a GPU node); the spec's own follow.
    out: list[dict[str, Any]] = []
    if spec.engine.device == "GPU":
        out.append(Toleration(key=spec.gpu.resource_name, operator="Exists", effect="NoSchedule").wire())
    for t in spec.placement.tolerations:
        w: dict[str, Any] = Toleration(t.key, t.operator, t.value, t.effect).wire()
        if t.toleration_seconds is not None:
            w["tolerationSeconds"] = t.toleration_seconds
        if w not in out:
            out.append(w)
    return out


def _affinity(spec: ModelReplicaSetSpec, node: str) -> dict[str, Any]:
    term: dict[str, Any] = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
    if spec.gpu.product:
        # Redundant with the plan, on purpose: if the node's labels change, the scheduler refuses
        # rather than binding a replica to GPUs it was not sized for.
        term["matchExpressions"] = [{"key": GPU_PRODUCT_LABEL, "operator": "In", "values": [spec.gpu.product]}]
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


def _spread(mrs_name: str, spec: ModelReplicaSetSpec) -> list[dict[str, Any]]:
    p = spec.placement
    if p.spread_across == "None":
        return []
    # The planner already spread the replicas; this states the intent to the scheduler too. With
    # nodeAffinityPolicy Honor only the pinned node's domain counts, so it never contradicts the plan.
    return [
        {
            "maxSkew": 1,
            "topologyKey": p.zone_key if p.spread_across == "Zone" else p.node_key,
            "whenUnsatisfiable": "DoNotSchedule" if p.spread_mode == "Required" else "ScheduleAnyway",
            "nodeAffinityPolicy": "Honor",
            "nodeTaintsPolicy": "Honor",
            "labelSelector": {
                "matchLabels": {MODELREPLICASET_LABEL: mrs_name},
                "matchExpressions": [{"key": ROLE_LABEL, "operator": "NotIn", "values": [ROLE_WORKER]}],
            },
        }
    ]


_RAY_WAIT = (
    "import sys, time, ray\n"
    'ray.init(address="auto", logging_level="ERROR")\n'
    "need, deadline = float(sys.argv[1]), time.time() + float(sys.argv[2])\n"
    'while ray.cluster_resources().get("GPU", 0) < need:\n'
    "    if time.time() > deadline:\n"
    '        sys.exit("gang incomplete: %d of %d GPUs joined" % (ray.cluster_resources().get("GPU", 0), need))\n'
    "    time.sleep(5)\n"
)
_TCP_WAIT = "import socket, sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 5)"


def _ray_leader_script(spec: ModelReplicaSetSpec, per_pod: int, args: list[str]) -> str:
    return "\n".join(
        [
            "set -e",
            (
                f'ray start --head --port={RAY_PORT} --node-ip-address="$VLLM_HOST_IP" --num-gpus={per_pod} '
                "--include-dashboard=false --disable-usage-stats"
            ),
            # The engine needs every GPU of the replica in the Ray cluster before it starts.
            (
                f"python3 -c {shlex.quote(_RAY_WAIT)} "
                f"{spec.engine.tensor_parallel_size * spec.engine.pipeline_parallel_size} "
                f"{spec.lifecycle.startup_timeout_seconds}"
            ),
            "exec vllm serve " + " ".join(shlex.quote(a) for a in args),
        ]
    )


def _ray_worker_script(leader: str, per_pod: int) -> str:
    return "\n".join(
        [
            "set -e",
            # The leader's name resolves once its pod has an IP; its Ray head listens shortly after.
            f"until python3 -c {shlex.quote(_TCP_WAIT)} {leader} {RAY_PORT} 2>/dev/null; do sleep 5; done",
            (
                f'exec ray start --address={leader}:{RAY_PORT} --node-ip-address="$VLLM_HOST_IP" --num-gpus={per_pod} '
                "--block --disable-usage-stats"
            ),
        ]
    )


def render_pod(mrs: ModelReplicaSet, a: Assignment, index: int, *, draining: bool = False) -> dict[str, Any]:
    """Pod `index` of the replica placed by `a` (0 is the leader of a gang)."""
    spec = mrs.spec
    name = _name(mrs)
    namespace = mrs.metadata.get("namespace", "default")
    replica = a.key.split("/", 1)[-1]
    gang = a.multi_node
    pname = _check(pod_name(replica, index, gang), "pod name")
    _check(replica, "replica name")
    role = ROLE_SERVER if not gang else ROLE_LEADER if index == 0 else ROLE_WORKER
    serves = role != ROLE_WORKER

    labels = {
        **common_labels(name),
        REPLICA_LABEL: replica,
        ROLE_LABEL: role,
        SPEC_HASH_LABEL: spec_hash(spec),
    }
    if serves:
        labels[SERVING_LABEL] = "false" if draining else "true"
    if gang:
        labels[GANG_SIZE_LABEL] = str(len(a.nodes))
    annotations = None
    if serves:
        annotations = {
            "prometheus.io/scrape": "true",
            "prometheus.io/port": str(spec.engine.port),
            "prometheus.io/path": "/metrics",
        }

    volumes, mounts = _volumes(spec)
    container: dict[str, Any] = {"name": CONTAINER, "image": spec.engine.image, "imagePullPolicy": "IfNotPresent"}
    leader_dns = f"{pod_name(replica, 0, True)}.{gang_service_name(name)}.{namespace}.svc"
    if not gang:
        container["command"] = ["vllm", "serve"]
        container["args"] = vllm_args(spec)
    else:
        backend = multi_node_backend(spec)
        args = vllm_args(spec, nnodes=len(a.nodes), node_rank=index, master_addr=leader_dns, backend=backend)
        if backend == "mp":
            container["command"] = ["vllm", "serve"]
            container["args"] = args
        elif index == 0:
            container["command"] = ["/bin/sh", "-c", _ray_leader_script(spec, a.gpus_per_node, args)]
        else:
            container["command"] = ["/bin/sh", "-c", _ray_worker_script(leader_dns, a.gpus_per_node)]
    ports = []
    if serves:
        ports.append({"name": HTTP_PORT_NAME, "containerPort": spec.engine.port, "protocol": "TCP"})
    if gang and index == 0:
        backend_port = RAY_PORT if multi_node_backend(spec) == "ray" else MASTER_PORT
        ports.append({"name": "rendezvous", "containerPort": backend_port, "protocol": "TCP"})
    if ports:
        container["ports"] = ports
    container["env"] = _env(mrs, gang)
    container["resources"] = _resources(spec, a.gpus_per_node)
    container["volumeMounts"] = mounts
    # Pod Security "restricted": GPUs come through the device plugin, which needs no privilege.
    container["securityContext"] = restricted_container()
    if serves:
        container.update(_probes(spec))
        container["lifecycle"] = {"preStop": {"exec": {"command": ["sleep", str(PRE_STOP_SLEEP_SECONDS)]}}}

    pod_spec: dict[str, Any] = {
        # A gang member that fails takes the engine with it; the controller restarts the group.
        "restartPolicy": "Never" if gang else "Always",
        # Service links would inject VLLM_PORT-style variables (from a Service named "vllm") that vLLM
        # reads as its own settings.
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        # vLLM never calls the API server: no token to steal from a replica.
        "automountServiceAccountToken": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": spec.engine.run_as_user,
            "runAsGroup": spec.engine.run_as_user,
            "fsGroup": spec.engine.run_as_user,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if gang and index == 0:
        pod_spec["hostname"] = pname
        pod_spec["subdomain"] = gang_service_name(name)
    if spec.placement.priority_class_name:
        pod_spec["priorityClassName"] = spec.placement.priority_class_name
    if spec.placement.node_selector:
        pod_spec["nodeSelector"] = dict(spec.placement.node_selector)
    pod_spec["affinity"] = _affinity(spec, a.nodes[index])
    pod_spec["tolerations"] = _tolerations(spec)
    spread = _spread(name, spec)
    if spread and serves:
        pod_spec["topologySpreadConstraints"] = spread
    pod_spec["containers"] = [container]
    pod_spec["volumes"] = volumes
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": _meta(mrs, pname, labels, annotations), "spec": pod_spec}
    return with_pod_template(pod, spec.pod_template)


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
    if spec.engine.device == "CPU":
        space, problem = cpu_kv_cache(spec)
        if problem is not None:
            raise RenderError(problem)
        # vLLM's CPU backend reserves this much KV cache (GiB) instead of a share of the host's RAM.
        env.append({"name": "VLLM_CPU_KVCACHE_SPACE", "value": str(space)})
    if spec.model.hf_token_secret_ref:
        ref = spec.model.hf_token_secret_ref
        env.append({"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}})
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


def render_replica(mrs: ModelReplicaSet, a: Assignment, *, draining: bool = False) -> list[dict[str, Any]]:
    """All pods of one placed replica, leader first."""
    return [render_pod(mrs, a, i, draining=draining) for i in range(len(a.nodes))]


# --- Services and disruption budget ----------------------------------------------------------


def render_services(mrs: ModelReplicaSet, *, gang: bool = False) -> list[dict[str, Any]]:
    name = _name(mrs)
    port = mrs.spec.engine.port
    labels = common_labels(name)
    http = [
        {"name": HTTP_PORT_NAME, "port": port, "targetPort": HTTP_PORT_NAME, "protocol": "TCP", "appProtocol": "http"}
    ]
    out = [
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(mrs, service_name(name), labels),
            "spec": {"type": "ClusterIP", "selector": serving_selector(name), "ports": http},
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(mrs, replicas_service_name(name), labels),
            # Only ready, non-draining replicas: routers read these EndpointSlices (one endpoint per replica).
            "spec": {
                "clusterIP": "None",
                "selector": serving_selector(name),
                "publishNotReadyAddresses": False,
                "ports": http,
            },
        },
    ]
    if gang:
        backend_port = RAY_PORT if multi_node_backend(mrs.spec) == "ray" else MASTER_PORT
        out.append(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": _meta(mrs, gang_service_name(name), labels),
                # Workers must reach a leader that is not ready yet (it waits for them).
                "spec": {
                    "clusterIP": "None",
                    "selector": {MODELREPLICASET_LABEL: name, ROLE_LABEL: ROLE_LEADER},
                    "publishNotReadyAddresses": True,
                    "ports": [
                        {"name": "rendezvous", "port": backend_port, "targetPort": backend_port, "protocol": "TCP"}
                    ],
                },
            }
        )
    return out


INFERENCE_POOL_API = "inference.networking.k8s.io/v1"


def render_inference_pool(mrs: ModelReplicaSet) -> dict[str, Any] | None:
    """The Gateway API Inference Extension InferencePool over the set's serving replicas, or None
    when the spec asks for none. It selects pods as the Services do (a replica's server or leader
    while not draining), so a gateway stops sending to a replica the moment its drain begins and
    sees a new replica once its pod is Ready, with no write of ours in between."""
    pool = mrs.spec.inference_pool
    if pool is None:
        return None
    name = _name(mrs)
    spec: dict[str, Any] = {
        "selector": {"matchLabels": serving_selector(name)},
        "targetPorts": [{"number": mrs.spec.engine.port}],
        "appProtocol": "http",
    }
    if pool.endpoint_picker is not None:
        epp = pool.endpoint_picker
        spec["endpointPickerRef"] = {
            "group": "",
            "kind": "Service",
            "name": epp.service_name,
            "port": {"number": epp.port},
            "failureMode": epp.failure_mode,
        }
    return {
        "apiVersion": INFERENCE_POOL_API,
        "kind": "InferencePool",
        "metadata": _meta(mrs, name, common_labels(name)),
        "spec": spec,
    }


def render_pdb(mrs: ModelReplicaSet) -> dict[str, Any]:
    name = _name(mrs)
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(mrs, name, common_labels(name)),
        "spec": {
            # Voluntary disruptions (node drains) take one pod at a time; a replica still loading or
            # crash-looping never blocks a drain.
            "maxUnavailable": 1,
            "selector": {"matchLabels": {MODELREPLICASET_LABEL: name}},
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def render_api_key_secret(mrs: ModelReplicaSet, value: str) -> dict[str, Any]:
    """The generated API key (no spec.engine.apiKeySecretRef): created once, never re-rendered;
    labelled with the operator's consent since the operator made it."""
    name = _name(mrs)
    labels = {**common_labels(name), CONSENT_LABEL: CONSENT_VALUE}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(mrs, api_key_secret_name(name), labels),
        "type": "Opaque",
        "stringData": {API_KEY_KEY: value},
    }


def render_network_policy(
    mrs: ModelReplicaSet, peers: Peers = DEFAULT_PEERS, picker_labels: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Who may reach the replicas' HTTP port: the workers of this namespace's AgentFleets that
    refer to this set (their pods carry its name in MODEL_CLIENT_LABEL or
    ROUTINE_MODEL_CLIENT_LABEL), the operator (adapter API, in-flight counts from /metrics) and
    Prometheus, each by its namespace's name and its pod labels, and, with spec.inferencePool,
    the gateway's data plane (``peers.gateway``) and the endpoint picker's pods in this namespace
    (``picker_labels``: its Service's selector). A gang's own pods reach each other on every port
    (rendezvous, NCCL). Nothing else, on any path: vLLM requires the API key only on /v1, so
    /metrics, /health, /tokenize and the rest are closed by this policy alone."""
    name = _name(mrs)
    http = [{"protocol": "TCP", "port": mrs.spec.engine.port}]
    clients: list[dict[str, Any]] = [
        {"podSelector": {"matchLabels": {MODEL_CLIENT_LABEL: name}}},
        {"podSelector": {"matchLabels": {ROUTINE_MODEL_CLIENT_LABEL: name}}},
        peers.operator.selector(),
    ]
    if peers.prometheus is not None:
        clients.append(peers.prometheus.selector())
    if mrs.spec.inference_pool is not None:
        if peers.gateway is not None:
            clients.append(peers.gateway.selector())
        if picker_labels:
            clients.append({"podSelector": {"matchLabels": dict(picker_labels)}})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(mrs, name, common_labels(name)),
        "spec": {
            "podSelector": {"matchLabels": {MODELREPLICASET_LABEL: name}},
            "policyTypes": ["Ingress"],
            "ingress": [
                {"from": clients, "ports": http},
                {"from": [{"podSelector": {"matchLabels": {MODELREPLICASET_LABEL: name}}}]},
            ],
        },
    }


def render_all(
    mrs: ModelReplicaSet,
    assignments: Iterable[Assignment],
    draining: Collection[str] = (),
    peers: Peers = DEFAULT_PEERS,
) -> list[dict[str, Any]]:
    """Every child object: Services, the PDB, then each placed replica's pods (by replica name).

    `draining` holds replica names (not keys) whose pods leave the Services.
    """
    placed = sorted(assignments, key=lambda a: a.key)
    objs = render_services(mrs, gang=any(a.multi_node for a in placed))
    objs.append(render_pdb(mrs))
    objs.append(render_network_policy(mrs, peers))
    for a in placed:
        objs += render_replica(mrs, a, draining=a.key.split("/", 1)[-1] in draining)
    return objs


def object_key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    """(kind, namespace, name): how the controller matches rendered objects to live ones."""
    m = obj["metadata"]
    return obj["kind"], m.get("namespace", ""), m["name"]
