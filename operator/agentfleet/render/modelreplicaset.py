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

import shlex
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from agentfleet_contract.modelreplicaset import ModelReplicaSet, ModelReplicaSetSpec

from agentfleet.capacity import format_quantity, parse_quantity
from agentfleet.placement import GPU_PRODUCT_LABEL, MODELREPLICASET_LABEL, REPLICA_LABEL, Assignment
from agentfleet.render.common import DEFAULT_PEERS, Peers, api_key_ref, restricted_container
from agentfleet.render.modelreplicaset_cache import (
    CACHE_FILL_LABEL,
    FILL_SCRIPT,
    cache_job_name,
    cache_model,
    device_and_token_env,
    is_hub_model,
    render_cache_job,
)
from agentfleet.render.modelreplicaset_names import (
    CACHE_PATH,
    CANARY_SERVING,
    CONTAINER,
    GANG_SIZE_LABEL,
    HEALTH_PATH,
    HTTP_PORT_NAME,
    MANAGED_BY,
    PRE_STOP_SLEEP_SECONDS,
    RAY_PORT,
    ROLE_LABEL,
    ROLE_LEADER,
    ROLE_SERVER,
    ROLE_WORKER,
    SERVING_LABEL,
    SHM_PATH,
    SPEC_HASH_LABEL,
    TERMINATION_GRACE_SECONDS,
    TMP_PATH,
    _check,
    _meta,
    _name,
    _tolerations,
    canary_service_name,
    common_labels,
    gang_service_name,
    pod_name,
    replicas_service_name,
    selector_string,
    service_name,
    serving_selector,
    spec_hash,
)
from agentfleet.render.modelreplicaset_services import (
    INFERENCE_POOL_API,
    render_api_key_secret,
    render_canary_service,
    render_inference_pool,
    render_network_policy,
    render_pdb,
    render_services,
)
from agentfleet.render.overlay import with_pod_template
from agentfleet.render.vllm import MASTER_PORT, MODEL_SOURCE_PATH, multi_node_backend, vllm_args

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
    env += device_and_token_env(spec)
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
                f"{spec.engine.gpus_per_replica} "
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


def render_pod(
    mrs: ModelReplicaSet, a: Assignment, index: int, *, draining: bool = False, canary: bool = False
) -> dict[str, Any]:
    """Pod `index` of the replica placed by `a` (0 is the leader of a gang); ``canary``: the set's
    canary replica, in its canary Service only."""
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
        labels[SERVING_LABEL] = "false" if draining else CANARY_SERVING if canary else "true"
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


def render_replica(mrs: ModelReplicaSet, a: Assignment, *, draining: bool = False) -> list[dict[str, Any]]:
    """All pods of one placed replica, leader first."""
    return [render_pod(mrs, a, i, draining=draining) for i in range(len(a.nodes))]


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


__all__ = [
    "CACHE_FILL_LABEL",
    "CACHE_PATH",
    "CANARY_SERVING",
    "CONTAINER",
    "FILL_SCRIPT",
    "GANG_SIZE_LABEL",
    "HEALTH_PATH",
    "HTTP_PORT_NAME",
    "INFERENCE_POOL_API",
    "MANAGED_BY",
    "PRE_STOP_SLEEP_SECONDS",
    "RAY_PORT",
    "ROLE_LABEL",
    "ROLE_LEADER",
    "ROLE_SERVER",
    "ROLE_WORKER",
    "SERVING_LABEL",
    "SHM_PATH",
    "SPEC_HASH_LABEL",
    "TERMINATION_GRACE_SECONDS",
    "TMP_PATH",
    "cache_job_name",
    "cache_model",
    "canary_service_name",
    "common_labels",
    "gang_service_name",
    "is_hub_model",
    "object_key",
    "pod_name",
    "render_all",
    "render_api_key_secret",
    "render_cache_job",
    "render_canary_service",
    "render_inference_pool",
    "render_network_policy",
    "render_pdb",
    "render_pod",
    "render_replica",
    "render_services",
    "replicas_service_name",
    "selector_string",
    "service_name",
    "serving_selector",
    "spec_hash",
]
