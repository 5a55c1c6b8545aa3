"""Child objects of an AgentFleet as plain dicts: the agent runtime and, when asked, its Redis.

Pure: no kopf, kubernetes, redis or agentfleet_runtime here. The controller resolves what lives
elsewhere (the ModelReplicaSets' and VectorIndex's names, ports and endpoints, the runtime config
document from ``agentfleet_contract.runtime_config.runtime_config``, the generated Redis password)
and applies what these functions return with server-side apply.

Names (a contract with the chart and the local demo):
- ConfigMap ``<fleet>-runtime``, key ``runtime.yaml``: the runtime's config document;
- Deployment ``<fleet>-worker`` (``python -m agentfleet_runtime worker --config ...``);
- Deployment and Service ``<fleet>-api`` (``python -m agentfleet_runtime api --config ...``);
- ServiceAccount ``<fleet>``, Role and RoleBinding ``<fleet>-endpointslices`` (workers watch the
  ModelReplicaSets' EndpointSlices to route sticky), PodDisruptionBudget ``<fleet>-worker``;
- Secret ``<fleet>-api-token`` (generated bearer token, only without spec.api.authSecretRef);
- managed Redis: Secret ``<fleet>-redis`` (key ``password``, generated once), StatefulSet and
  Service ``<fleet>-redis``, NetworkPolicy ``<fleet>-redis``;
- NetworkPolicy ``<fleet>-worker-egress`` (the workers' egress: no metadata addresses, and no API
  server where the fleet says so).

Labels are our own: nothing is copied from the AgentFleet's metadata, so a GitOps tool's tracking
labels (app.kubernetes.io/instance, argocd.argoproj.io/*) never mark a child as one of its own.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import yaml
from agentfleet_contract.agentfleet import AgentFleet, AgentFleetSpec
from agentfleet_contract.runtime_config import EGRESS_DENY_ENV, PodLayout

from agentfleet.capacity import parse_quantity
from agentfleet.render.common import (
    DEFAULT_PEERS,
    MODEL_CLIENT_LABEL,
    ROUTINE_MODEL_CLIENT_LABEL,
    Peers,
    RenderError,
    api_key_ref,
    child_meta,
)
from agentfleet.render.overlay import with_pod_template

FLEET_LABEL = "agentfleet.io/agentfleet"
COMPONENT_LABEL = "app.kubernetes.io/component"
CONFIG_HASH_ANNOTATION = "agentfleet.io/config-hash"
MANAGED_BY = "agentfleet"

RUNTIME_MODULE = "agentfleet_runtime"
CONFIG_DIR = "/etc/agentfleet"
CONFIG_KEY = "runtime.yaml"
CONFIG_PATH = f"{CONFIG_DIR}/{CONFIG_KEY}"
TOKENS_DIR = "/etc/agentfleet/api"
TOKENS_FILE = f"{TOKENS_DIR}/tokens"
TOKEN_KEY = "tokens"
# The runtime ConfigMap's key with the generated token's tokens-file line (its hash, tenant
# default): the task API mounts that, never the token itself, which stays in the Secret its
# users read. Outside the config document, so a rotated token reaches the pods without a restart.
TOKEN_HASHES_KEY = "api-tokens"
TOOL_HEADERS_DIR = "/etc/agentfleet/tool-headers"
TRACING_HEADERS_DIR = "/etc/agentfleet/tracing"  # spec.tracing.headersSecretRef's key, as the file "headers"
API_PORT = 8080
METRICS_PORT = 9090
REDIS_PORT = 6379
STARTUP_PROBE_SECONDS = 300  # how long an api or worker container may take to start listening
REDIS_PASSWORD_KEY = "password"
RUN_AS = 65532  # the runtime image's numeric non-root user
REDIS_UID = 999  # the redis image's own user
# maxmemory as a share of the pod's memory limit: the rest is the AOF rewrite's copy-on-write,
# client buffers and the allocator's overhead. At maxmemory Redis refuses writes (noeviction:
# evicting would silently drop tasks); the task API answers 503 and reports it on /readyz.
REDIS_MAXMEMORY_SHARE = 0.75
# SIGTERM: running steps get this long to reach a checkpoint, then the worker hands its tasks back.
SHUTDOWN_GRACE_SECONDS = 30
# The kubelet's kill must come after the release: grace + time to release hundreds of tasks.
WORKER_TERMINATION_GRACE_SECONDS = SHUTDOWN_GRACE_SECONDS + 30
API_RESOURCES = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}

# Cloud metadata services (AWS, GCP, Azure: 169.254.169.254; AWS over IPv6: fd00:ec2::254): the
# node's credentials live there. The chart's workerEgress.deniedCIDRs replaces this default.
DEFAULT_EGRESS_DENY = ("169.254.0.0/16", "fd00:ec2::254/128")

# Pods allowed to reach a managed Redis besides the fleet's own: the operator (the chart's pod
# labels, any namespace) reads queue depth and task statistics from it; it still needs the password.


# --- Names and labels -------------------------------------------------------------------------


def config_map_name(fleet: str) -> str:
    return f"{fleet}-runtime"


def worker_name(fleet: str) -> str:
    return f"{fleet}-worker"


def api_name(fleet: str) -> str:
    return f"{fleet}-api"


def redis_name(fleet: str) -> str:
    return f"{fleet}-redis"


def redis_secret_name(fleet: str) -> str:
    return f"{fleet}-redis"


def api_token_secret_name(fleet: str) -> str:
    return f"{fleet}-api-token"


def service_account_name(fleet: str) -> str:
    return fleet


def worker_egress_name(fleet: str) -> str:
    return f"{fleet}-worker-egress"


def role_name(fleet: str) -> str:
    return f"{fleet}-endpointslices"


def labels(fleet: str, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "agentfleet",
        COMPONENT_LABEL: component,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        FLEET_LABEL: fleet,
    }


def selector(fleet: str, component: str) -> dict[str, str]:
    return {FLEET_LABEL: fleet, COMPONENT_LABEL: component}


def selector_string(fleet: str) -> str:
    """status.selector for the scale subresource: the worker pods."""
    return ",".join(f"{k}={v}" for k, v in selector(fleet, "worker").items())


def task_api_endpoint(fleet: str, namespace: str) -> str:
    return f"http://{api_name(fleet)}.{namespace}.svc:{API_PORT}"


def managed_redis_url(fleet: str, namespace: str) -> str:
    return f"redis://{redis_name(fleet)}.{namespace}.svc:{REDIS_PORT}/0"


def _fleet(af: AgentFleet) -> tuple[str, str]:
    meta = af.metadata or {}
    if not meta.get("name") or not meta.get("namespace"):
        raise RenderError("the AgentFleet needs metadata.name and metadata.namespace")
    return meta["name"], meta["namespace"]


def _meta(af: AgentFleet, name: str, component: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    fleet, ns = _fleet(af)
    return child_meta(af, name, labels(fleet, component), annotations, namespace=ns)


# --- Resolved references ------------------------------------------------------------------------


POD_LAYOUT = PodLayout(
    metrics_port=METRICS_PORT,
    api_port=API_PORT,
    tokens_file=TOKENS_FILE,
    tool_headers_dir=TOOL_HEADERS_DIR,
    shutdown_grace_seconds=SHUTDOWN_GRACE_SECONDS,
    tracing_headers_file=TRACING_HEADERS_DIR + "/headers",
)


def config_text(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=True, default_flow_style=False, allow_unicode=True)


def config_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def desired_workers(spec: AgentFleetSpec, status: dict[str, Any] | None) -> int:
    """spec.workers.replicas, or the autoscaler's status.desiredWorkers clamped to min/max."""
    w = spec.workers
    if not w.autoscaling:
        return w.replicas
    want = (status or {}).get("desiredWorkers")
    n = int(want) if want is not None else w.replicas
    return max(w.min_replicas, min(w.max_replicas, n))


# --- The runtime ---------------------------------------------------------------------------------


def _container_security() -> dict[str, Any]:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _pod_security(uid: int = RUN_AS) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def redis_password_ref(af: AgentFleet) -> dict[str, str] | None:
    """Secret key holding the password of the fleet's Redis, if it has one."""
    fleet, _ = _fleet(af)
    r = af.spec.redis
    if r.deploy is not None:
        return {"name": redis_secret_name(fleet), "key": REDIS_PASSWORD_KEY}
    if r.password_secret_ref is not None:
        return {"name": r.password_secret_ref.name, "key": r.password_secret_ref.key}
    return None


def _env(af: AgentFleet, milvus_env: list[dict[str, Any]]) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "HOME", "value": "/tmp"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    ref = redis_password_ref(af)
    if ref is not None:
        env.append({"name": "AGENTFLEET_REDIS_PASSWORD", "valueFrom": {"secretKeyRef": ref}})
    return env + [dict(e) for e in milvus_env]


def _tool_header_volume(spec: AgentFleetSpec) -> dict[str, Any] | None:
    refs = [(t.name, ref) for t in spec.tools if (ref := t.headers_ref()) is not None]
    sources = [{"secret": {"name": ref.name, "items": [{"key": ref.key, "path": name}]}} for name, ref in refs]
    return {"name": "tool-headers", "projected": {"sources": sources}} if sources else None


def _model_key_env(ref: dict[str, str] | None, routine: dict[str, str] | None) -> list[dict[str, Any]]:
    """Each tier's API key, from its own ModelReplicaSet's Secret: the runtime sends each its own."""
    env = [{"name": "AGENTFLEET_MODEL_API_KEY", "valueFrom": {"secretKeyRef": ref}}] if ref else []
    if routine:
        env.append({"name": "AGENTFLEET_ROUTINE_MODEL_API_KEY", "valueFrom": {"secretKeyRef": routine}})
    return env


def _pod_template(
    af: AgentFleet,
    component: str,
    args: list[str],
    *,
    hash_: str,
    milvus_env: list[dict[str, Any]],
    port: int,
    resources: dict[str, Any],
    model_key: dict[str, str] | None = None,
    routine_key: dict[str, str] | None = None,
    extra_env: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``model_key`` / ``routine_key``: secretKeyRef of the API key the primary / routine model's
    replicas require (workers only)."""
    fleet, _ = _fleet(af)
    mounts = [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True}, {"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict[str, Any]] = [
        {
            "name": "config",
            "configMap": {"name": config_map_name(fleet), "items": [{"key": CONFIG_KEY, "path": CONFIG_KEY}]},
        },
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
    ]
    if component == "api":
        ref = af.spec.api.auth_secret_ref
        if ref is not None:
            items = [{"key": ref.key, "path": "tokens"}]
            volumes.append({"name": "api-tokens", "secret": {"secretName": ref.name, "items": items}})
        else:  # the generated token's hash only (TOKEN_HASHES_KEY); its Secret is for its users
            items = [{"key": TOKEN_HASHES_KEY, "path": "tokens"}]
            volumes.append({"name": "api-tokens", "configMap": {"name": config_map_name(fleet), "items": items}})
        mounts.append({"name": "api-tokens", "mountPath": TOKENS_DIR, "readOnly": True})
    if component == "worker" and (hv := _tool_header_volume(af.spec)) is not None:
        volumes.append(hv)
        mounts.append({"name": "tool-headers", "mountPath": TOOL_HEADERS_DIR, "readOnly": True})
    tracing = af.spec.tracing
    if component == "worker" and tracing is not None and (ref := tracing.headers_secret_ref) is not None:
        items = [{"key": ref.key, "path": "headers"}]
        volumes.append({"name": "tracing-headers", "secret": {"secretName": ref.name, "items": items}})
        mounts.append({"name": "tracing-headers", "mountPath": TRACING_HEADERS_DIR, "readOnly": True})
    probe = {
        "httpGet": {"path": "/healthz", "port": "http" if component == "api" else "metrics"},
        "periodSeconds": 10,
        "timeoutSeconds": 3,
        "failureThreshold": 6,
    }
    # Liveness starts only once this passes: a pod starting on a busy node (imports under a CPU limit)
    # was restarted by its liveness probe before it ever listened, and its tasks waited out the
    # visibility timeout. Up to 5 minutes to start; a dead process still fails it.
    startup = {**probe, "periodSeconds": 5, "failureThreshold": STARTUP_PROBE_SECONDS // 5}
    ready = {
        "httpGet": {"path": "/readyz", "port": "http" if component == "api" else "metrics"},
        "periodSeconds": 5,
        "timeoutSeconds": 3,
        "failureThreshold": 3,
    }
    ports = [{"name": "http" if component == "api" else "metrics", "containerPort": port, "protocol": "TCP"}]
    container = {
        "name": component,
        "image": af.spec.image,
        "command": ["python", "-m", RUNTIME_MODULE],
        "args": args,
        "env": _env(af, milvus_env) + _model_key_env(model_key, routine_key) + list(extra_env or []),
        "ports": ports,
        "resources": resources,
        "volumeMounts": mounts,
        "startupProbe": startup,
        "livenessProbe": probe,
        "readinessProbe": ready,
        "securityContext": _container_security(),
    }
    spec: dict[str, Any] = {
        "serviceAccountName": service_account_name(fleet),
        "enableServiceLinks": False,
        "securityContext": _pod_security(),
        "containers": [container],
        "volumes": volumes,
    }
    if component == "worker":
        spec["terminationGracePeriodSeconds"] = WORKER_TERMINATION_GRACE_SECONDS
        if not af.spec.workers.allow_api_server:
            # Their routing calls each set's Service (runtime_config.model_routing): no token to hold.
            spec["automountServiceAccountToken"] = False
    else:
        # The task API holds no tasks; it only needs no token of the API server.
        spec["automountServiceAccountToken"] = False
    pod_labels = labels(fleet, component)
    if component == "worker":
        # The ModelReplicaSets' NetworkPolicies admit the workers by these labels.
        pod_labels[MODEL_CLIENT_LABEL] = af.spec.model_ref.name
        if af.spec.routine_model_ref is not None:
            pod_labels[ROUTINE_MODEL_CLIENT_LABEL] = af.spec.routine_model_ref.name
    template = {"metadata": {"labels": pod_labels, "annotations": {CONFIG_HASH_ANNOTATION: hash_}}, "spec": spec}
    return with_pod_template(template, af.spec.pod_template)


def render_config_map(af: AgentFleet, doc: dict[str, Any], token_hashes: str | None = None) -> dict[str, Any]:
    """``token_hashes``: the generated token's tokens-file line (no spec.api.authSecretRef); None
    or empty leaves the key empty, which refuses every token (fail closed until it is known)."""
    fleet, _ = _fleet(af)
    data = {CONFIG_KEY: config_text(doc)}
    if af.spec.api.auth_secret_ref is None:
        data[TOKEN_HASHES_KEY] = f"{token_hashes}\n" if token_hashes else ""
    meta = _meta(af, config_map_name(fleet), "config")
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": data}


def render_worker(
    af: AgentFleet,
    *,
    replicas: int,
    hash_: str,
    milvus_env: list[dict[str, Any]] | None = None,
    model_key: dict[str, str] | None = None,
    routine_key: dict[str, str] | None = None,
    egress: Egress | None = None,
) -> dict[str, Any]:
    fleet, _ = _fleet(af)
    w = af.spec.workers
    # The HTTP tools refuse the same addresses in-process (and the API server's always).
    deny = [{"name": EGRESS_DENY_ENV, "value": ",".join((*egress.denied, *egress.api_server))}] if egress else []
    resources = {"requests": {"cpu": w.cpu, "memory": w.memory}, "limits": {"memory": w.memory}}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(af, worker_name(fleet), "worker"),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector(fleet, "worker")},
            # New workers first: the old ones hand their tasks back as they drain.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 0}},
            "template": _pod_template(
                af,
                "worker",
                ["worker", "--config", CONFIG_PATH],
                hash_=hash_,
                milvus_env=milvus_env or [],
                port=METRICS_PORT,
                resources=resources,
                model_key=model_key,
                routine_key=routine_key,
                extra_env=deny,
            ),
        },
    }


@dataclass(frozen=True)
class Egress:
    """Addresses the workers may not reach, from the operator's settings (the chart's workerEgress)."""

    denied: tuple[str, ...] = DEFAULT_EGRESS_DENY
    # The API server's own addresses (a NetworkPolicy sees them after the Service IP is translated).
    api_server: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for entry in (*self.denied, *self.api_server):
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError as e:
                raise RenderError(f"workerEgress: {entry!r} is not an IP address or CIDR") from e


def _except(cidrs: list[str], version: int) -> list[str]:
    nets = (ipaddress.ip_network(c, strict=False) for c in cidrs)
    return sorted({str(n) for n in nets if n.version == version})


def render_worker_egress(af: AgentFleet, egress: Egress) -> dict[str, Any]:
    """The workers' egress NetworkPolicy: anywhere but the denied ranges, and the API server's
    addresses too unless spec.workers.allowAPIServer. Tools and prompts come from fleet authors
    and models, so what a worker can reach is what a prompt injection can reach."""
    fleet, _ = _fleet(af)
    denied = [*egress.denied, *(() if af.spec.workers.allow_api_server else egress.api_server)]
    blocks = []
    for cidr, version in (("0.0.0.0/0", 4), ("::/0", 6)):
        block: dict[str, Any] = {"cidr": cidr}
        if ex := _except(denied, version):
            block["except"] = ex
        blocks.append({"ipBlock": block})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(af, worker_egress_name(fleet), "worker"),
        "spec": {
            "podSelector": {"matchLabels": selector(fleet, "worker")},
            "policyTypes": ["Egress"],
            # Pods (DNS, Redis, replicas, Milvus) by selector as well: some CNIs (Cilium) match
            # only addresses outside the cluster with ipBlock. Host-network pods, the API server
            # among them, are not selected by it.
            "egress": [{"to": blocks}, {"to": [{"namespaceSelector": {}}]}],
        },
    }


def render_api(af: AgentFleet, *, hash_: str) -> list[dict[str, Any]]:
    fleet, _ = _fleet(af)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(af, api_name(fleet), "api"),
        "spec": {
            "replicas": af.spec.api.replicas,
            "selector": {"matchLabels": selector(fleet, "api")},
            "template": _pod_template(
                af,
                "api",
                ["api", "--config", CONFIG_PATH],
                hash_=hash_,
                milvus_env=[],
                port=API_PORT,
                resources=dict(API_RESOURCES),
            ),
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(af, api_name(fleet), "api"),
        "spec": {
            "selector": selector(fleet, "api"),
            "ports": [{"name": "http", "port": API_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    return [deployment, service]


def render_identity(af: AgentFleet) -> list[dict[str, Any]]:
    """ServiceAccount, and the Role its workers need to read the replicas' EndpointSlices."""
    fleet, ns = _fleet(af)
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(af, service_account_name(fleet), "runtime")},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(af, role_name(fleet), "runtime"),
            "rules": [
                {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["get", "list", "watch"]}
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(af, role_name(fleet), "runtime"),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role_name(fleet)},
            "subjects": [{"kind": "ServiceAccount", "name": service_account_name(fleet), "namespace": ns}],
        },
    ]


def render_pdb(af: AgentFleet) -> dict[str, Any]:
    fleet, _ = _fleet(af)
    # One worker drains at a time: its tasks move to the others, not all at once to a queue.
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(af, worker_name(fleet), "worker"),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(fleet, "worker")}},
    }


def render_secret(af: AgentFleet, name: str, key: str, value: str, component: str) -> dict[str, Any]:
    """A generated Secret; the controller creates it once and never re-renders the value."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(af, name, component),
        "type": "Opaque",
        "stringData": {key: value},
    }


# --- Managed Redis -----------------------------------------------------------------------------


def redis_maxmemory(memory: str) -> int:
    """Bytes Redis may hold under a pod memory limit of ``memory`` (a Kubernetes quantity)."""
    return int(parse_quantity(memory) * REDIS_MAXMEMORY_SHARE)


def render_redis(af: AgentFleet, peers: Peers = DEFAULT_PEERS) -> list[dict[str, Any]]:
    """StatefulSet (AOF on a PVC, password from the generated Secret), Service and NetworkPolicy:
    the fleet's pods and the operator (by its namespace's name and its pod labels) reach Redis."""
    fleet, _ = _fleet(af)
    managed = af.spec.redis.deploy
    if managed is None:
        raise RenderError("spec.redis.deploy is unset: the fleet uses an existing Redis")
    name = redis_name(fleet)
    sel = selector(fleet, "redis")
    password_env = {
        "name": "REDIS_PASSWORD",
        "valueFrom": {"secretKeyRef": {"name": redis_secret_name(fleet), "key": REDIS_PASSWORD_KEY}},
    }
    ping = ["sh", "-c", 'redis-cli --no-auth-warning -a "$REDIS_PASSWORD" ping | grep -q PONG']
    container = {
        "name": "redis",
        "image": managed.image,
        "command": ["redis-server"],
        # $(REDIS_PASSWORD) is expanded by the kubelet from the env var, never stored in the spec.
        "args": [
            *("--appendonly", "yes", "--appendfsync", "everysec", "--dir", "/data", "--port", str(REDIS_PORT)),
            *("--maxmemory", str(redis_maxmemory(managed.memory)), "--maxmemory-policy", "noeviction"),
            *("--requirepass", "$(REDIS_PASSWORD)"),
        ],
        "env": [password_env],
        "ports": [{"name": "redis", "containerPort": REDIS_PORT, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "250m", "memory": managed.memory}, "limits": {"memory": managed.memory}},
        "volumeMounts": [{"name": "data", "mountPath": "/data"}, {"name": "tmp", "mountPath": "/tmp"}],
        "readinessProbe": {"exec": {"command": ping}, "periodSeconds": 5, "timeoutSeconds": 3},
        "livenessProbe": {"tcpSocket": {"port": "redis"}, "periodSeconds": 10, "failureThreshold": 6},
        "securityContext": {**_container_security(), "runAsUser": REDIS_UID, "runAsGroup": REDIS_UID},
    }
    sts = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(af, name, "redis"),
        "spec": {
            "serviceName": name,
            "replicas": 1,
            "selector": {"matchLabels": sel},
            # The AOF goes with the fleet; scaling is never done (one Redis).
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Retain"},
            "template": {
                "metadata": {"labels": labels(fleet, "redis")},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": _pod_security(REDIS_UID),
                    "terminationGracePeriodSeconds": 30,
                    "containers": [container],
                    "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
                },
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": "data", "labels": labels(fleet, "redis")},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": managed.storage_size}},
                    },
                }
            ],
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(af, name, "redis"),
        "spec": {
            "selector": sel,
            "ports": [{"name": "redis", "port": REDIS_PORT, "targetPort": "redis", "protocol": "TCP"}],
        },
    }
    policy = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(af, name, "redis"),
        "spec": {
            "podSelector": {"matchLabels": sel},
            "policyTypes": ["Ingress"],
            "ingress": [
                {
                    "from": [
                        {"podSelector": {"matchLabels": {FLEET_LABEL: fleet}}},
                        peers.operator.selector(),
                    ],
                    "ports": [{"protocol": "TCP", "port": REDIS_PORT}],
                }
            ],
        },
    }
    return [sts, service, policy]


def render_runtime(
    af: AgentFleet,
    doc: dict[str, Any],
    *,
    replicas: int,
    milvus_env: list[dict[str, Any]] | None = None,
    model_key_secret_ref: Any | None = None,
    routine_key_secret_ref: Any | None = None,
    token_hashes: str | None = None,
    egress: Egress | None = Egress(),
) -> list[dict[str, Any]]:
    """Every child of the runtime, in apply order (identity, config and the egress policy before
    the pods). ``model_key_secret_ref`` / ``routine_key_secret_ref``: the primary / routine
    ModelReplicaSet's spec.engine.apiKeySecretRef (None: that set's generated Secret); the workers
    send each tier's replicas their own key. ``token_hashes``: the generated token's tokens-file
    line (render_config_map). ``egress`` None: no egress policy (the chart's workerEgress.enabled
    false)."""
    cm = render_config_map(af, doc, token_hashes)
    h = config_hash(cm["data"][CONFIG_KEY])
    key = api_key_ref(af.spec.model_ref.name, model_key_secret_ref)
    routine = af.spec.routine_model_ref
    routine_key = api_key_ref(routine.name, routine_key_secret_ref) if routine is not None else None
    worker = render_worker(
        af, replicas=replicas, hash_=h, milvus_env=milvus_env, model_key=key, routine_key=routine_key, egress=egress
    )
    policy = [render_worker_egress(af, egress)] if egress is not None else []
    return [*render_identity(af), cm, *policy, worker, *render_api(af, hash_=h), render_pdb(af)]


# --- Readiness of what was applied -------------------------------------------------------------


def deployment_available(dep: dict[str, Any] | None) -> tuple[bool, str]:
    if dep is None:
        return False, "not created yet"
    want = int((dep.get("spec") or {}).get("replicas", 1))
    st = dep.get("status") or {}
    gen = (dep.get("metadata") or {}).get("generation", 0)
    if st.get("observedGeneration", 0) < gen:
        return False, "rollout not observed yet"
    updated, ready, avail = st.get("updatedReplicas", 0), st.get("readyReplicas", 0), st.get("availableReplicas", 0)
    if updated < want or avail < want or (st.get("replicas", 0) > want):
        return False, f"{avail}/{want} available, {updated} updated, {ready} ready"
    return True, f"{avail}/{want} available"


def statefulset_ready(sts: dict[str, Any] | None) -> tuple[bool, str]:
    if sts is None:
        return False, "not created yet"
    want = int((sts.get("spec") or {}).get("replicas", 1))
    ready = int((sts.get("status") or {}).get("readyReplicas") or 0)
    return ready >= want, f"{ready}/{want} ready"


def format_cost(value: float | Decimal) -> str:
    """Mean cost as a decimal string: six places at most, no trailing zeros ("0.0123")."""
    d = Decimal(str(value)).quantize(Decimal("0.000001"))
    s = format(d, "f").rstrip("0").rstrip(".")
    return s or "0"
