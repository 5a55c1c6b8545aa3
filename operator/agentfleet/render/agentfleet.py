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
from decimal import Decimal
from typing import Any

import yaml
from agentfleet_contract.agentfleet import AgentFleet, AgentFleetSpec
from agentfleet_contract.agentfleet.api import TLS_CERT_KEY, TLS_KEY_KEY
from agentfleet_contract.common import SecretKeyRef
from agentfleet_contract.runtime_config import EGRESS_DENY_ENV, PodLayout, tool_ca_file

from agentfleet.render.agentfleet_egress import DEFAULT_EGRESS_DENY, Egress, render_worker_egress
from agentfleet.render.agentfleet_names import (
    API_PORT,
    API_RESOURCES,
    API_SCHEME_LABEL,
    API_TLS_DIR,
    COMPONENT_LABEL,
    CONFIG_DIR,
    CONFIG_HASH_ANNOTATION,
    CONFIG_KEY,
    CONFIG_PATH,
    FLEET_LABEL,
    MANAGED_BY,
    METRICS_PORT,
    REDIS_PASSWORD_KEY,
    REDIS_PORT,
    REDIS_UID,
    RUN_AS,
    RUNTIME_MODULE,
    SHUTDOWN_GRACE_SECONDS,
    STARTUP_PROBE_SECONDS,
    TOKEN_HASHES_KEY,
    TOKEN_KEY,
    TOKENS_DIR,
    TOKENS_FILE,
    TOOL_CA_DIR,
    TOOL_HEADERS_DIR,
    TRACING_HEADERS_DIR,
    WORKER_TERMINATION_GRACE_SECONDS,
    _container_security,
    _fleet,
    _meta,
    _pod_security,
    api_name,
    api_token_secret_name,
    config_map_name,
    labels,
    managed_redis_url,
    redis_name,
    redis_password_ref,
    redis_secret_name,
    role_name,
    selector,
    selector_string,
    service_account_name,
    task_api_endpoint,
    worker_egress_name,
    worker_name,
)
from agentfleet.render.agentfleet_redis import REDIS_MAXMEMORY_SHARE, redis_maxmemory, render_redis
from agentfleet.render.common import MODEL_CLIENT_LABEL, ROUTINE_MODEL_CLIENT_LABEL, RenderError, api_key_ref
from agentfleet.render.overlay import with_pod_template

# --- Resolved references ------------------------------------------------------------------------


POD_LAYOUT = PodLayout(
    metrics_port=METRICS_PORT,
    api_port=API_PORT,
    tokens_file=TOKENS_FILE,
    tool_headers_dir=TOOL_HEADERS_DIR,
    tool_ca_dir=TOOL_CA_DIR,
    shutdown_grace_seconds=SHUTDOWN_GRACE_SECONDS,
    tracing_headers_file=TRACING_HEADERS_DIR + "/headers",
    tls_dir=API_TLS_DIR,
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


def _projected(volume: str, files: list[tuple[str, SecretKeyRef]]) -> dict[str, Any] | None:
    """One volume of Secret keys, each as the file named beside it; None when there are none."""
    sources = [{"secret": {"name": ref.name, "items": [{"key": ref.key, "path": path}]}} for path, ref in files]
    return {"name": volume, "projected": {"sources": sources}} if sources else None


def _tool_header_volume(spec: AgentFleetSpec) -> dict[str, Any] | None:
    """Each tool's headersSecretRef key as a file named like the tool."""
    return _projected("tool-headers", [(t.name, ref) for t in spec.tools if (ref := t.headers_ref()) is not None])


def _tool_ca_volume(spec: AgentFleetSpec) -> dict[str, Any] | None:
    """Each tool's caSecretRef key as <tool name>.pem (the file the runtime reads, tool_ca_file)."""
    files = [(tool_ca_file("", t.name).lstrip("/"), ref) for t in spec.tools if (ref := t.ca_ref()) is not None]
    return _projected("tool-ca", files)


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
    # The workers read the tokens file too: their /metrics answers to the API's metricsAccess rule
    # (Token: a bearer token of the API). It holds the tokens' hashes only.
    if component in ("api", "worker"):
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
    # Only the workers call tools; the task API pods make no tool connections, so they get no CA files.
    if component == "worker" and (cv := _tool_ca_volume(af.spec)) is not None:
        volumes.append(cv)
        mounts.append({"name": "tool-ca", "mountPath": TOOL_CA_DIR, "readOnly": True})
    tls = af.spec.api.tls
    if component == "api" and tls is not None:
        # Only the task API serves TLS: the workers never get its private key.
        items = [{"key": k, "path": k} for k in (TLS_CERT_KEY, TLS_KEY_KEY)]
        volumes.append({"name": "api-tls", "secret": {"secretName": tls.secret_name, "items": items}})
        mounts.append({"name": "api-tls", "mountPath": API_TLS_DIR, "readOnly": True})
    # The kubelet's probes speak TLS to an API that serves it (and trust any certificate, as they always do).
    scheme = {"scheme": "HTTPS"} if component == "api" and tls is not None else {}
    tracing = af.spec.tracing
    if component == "worker" and tracing is not None and (ref := tracing.headers_secret_ref) is not None:
        items = [{"key": ref.key, "path": "headers"}]
        volumes.append({"name": "tracing-headers", "secret": {"secretName": ref.name, "items": items}})
        mounts.append({"name": "tracing-headers", "mountPath": TRACING_HEADERS_DIR, "readOnly": True})
    probe = {
        "httpGet": {"path": "/healthz", "port": "http" if component == "api" else "metrics", **scheme},
        "periodSeconds": 10,
        "timeoutSeconds": 3,
        "failureThreshold": 6,
    }
    # Liveness starts only once this passes: a pod starting on a busy node (imports under a CPU limit)
    # was restarted by its liveness probe before it ever listened, and its tasks waited out the
    # visibility timeout. Up to 5 minutes to start; a dead process still fails it.
    startup = {**probe, "periodSeconds": 5, "failureThreshold": STARTUP_PROBE_SECONDS // 5}
    ready = {
        "httpGet": {"path": "/readyz", "port": "http" if component == "api" else "metrics", **scheme},
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
    if scheme:
        pod_labels[API_SCHEME_LABEL] = "https"
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


__all__ = [
    "API_PORT",
    "API_RESOURCES",
    "API_SCHEME_LABEL",
    "API_TLS_DIR",
    "COMPONENT_LABEL",
    "CONFIG_DIR",
    "CONFIG_HASH_ANNOTATION",
    "CONFIG_KEY",
    "CONFIG_PATH",
    "DEFAULT_EGRESS_DENY",
    "Egress",
    "FLEET_LABEL",
    "MANAGED_BY",
    "METRICS_PORT",
    "POD_LAYOUT",
    "REDIS_MAXMEMORY_SHARE",
    "REDIS_PASSWORD_KEY",
    "REDIS_PORT",
    "REDIS_UID",
    "RenderError",
    "RUNTIME_MODULE",
    "RUN_AS",
    "SHUTDOWN_GRACE_SECONDS",
    "STARTUP_PROBE_SECONDS",
    "TOKENS_DIR",
    "TOKENS_FILE",
    "TOKEN_HASHES_KEY",
    "TOKEN_KEY",
    "TOOL_CA_DIR",
    "TOOL_HEADERS_DIR",
    "TRACING_HEADERS_DIR",
    "WORKER_TERMINATION_GRACE_SECONDS",
    "api_name",
    "api_token_secret_name",
    "config_hash",
    "config_map_name",
    "config_text",
    "deployment_available",
    "desired_workers",
    "format_cost",
    "labels",
    "managed_redis_url",
    "redis_maxmemory",
    "redis_name",
    "redis_password_ref",
    "redis_secret_name",
    "render_api",
    "render_config_map",
    "render_identity",
    "render_pdb",
    "render_redis",
    "render_runtime",
    "render_secret",
    "render_worker",
    "render_worker_egress",
    "role_name",
    "selector",
    "selector_string",
    "service_account_name",
    "statefulset_ready",
    "task_api_endpoint",
    "worker_egress_name",
    "worker_name",
]
