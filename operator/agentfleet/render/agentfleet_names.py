"""AgentFleet children: their names, labels, ports and paths, and the security context every pod runs with.

Pure, like the rest of agentfleet.render.agentfleet, which re-exports every public name here.
"""

from __future__ import annotations

from typing import Any

from agentfleet_contract.agentfleet import AgentFleet

from agentfleet.render.common import RenderError, child_meta

FLEET_LABEL = "agentfleet.io/agentfleet"
COMPONENT_LABEL = "app.kubernetes.io/component"
# On task API pods that serve HTTPS (spec.api.tls): the chart's PodMonitor scrapes their /metrics over
# HTTPS and the others' over HTTP, since one PodMonitor covers every fleet.
API_SCHEME_LABEL = "agentfleet.io/api-scheme"
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
TOOL_CA_DIR = "/etc/agentfleet/tool-ca"  # each tool's caSecretRef key as <tool name>.pem, worker pods only
API_TLS_DIR = "/etc/agentfleet/tls"  # spec.api.tls.secretName's tls.crt and tls.key, task API pods only
TRACING_HEADERS_DIR = "/etc/agentfleet/tracing"  # spec.tracing.headersSecretRef's key, as the file "headers"
API_PORT = 8080
METRICS_PORT = 9090
REDIS_PORT = 6379
STARTUP_PROBE_SECONDS = 300  # how long an api or worker container may take to start listening
REDIS_PASSWORD_KEY = "password"
RUN_AS = 65532  # the runtime image's numeric non-root user
REDIS_UID = 999  # the redis image's own user
# SIGTERM: running steps get this long to reach a checkpoint, then the worker hands its tasks back.
SHUTDOWN_GRACE_SECONDS = 30
# The kubelet's kill must come after the release: grace + time to release hundreds of tasks.
WORKER_TERMINATION_GRACE_SECONDS = SHUTDOWN_GRACE_SECONDS + 30
API_RESOURCES = {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}

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


def task_api_endpoint(fleet: str, namespace: str, *, tls: bool = False) -> str:
    """The task API's Service URL: https:// when it serves TLS itself (spec.api.tls)."""
    return f"{'https' if tls else 'http'}://{api_name(fleet)}.{namespace}.svc:{API_PORT}"


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
