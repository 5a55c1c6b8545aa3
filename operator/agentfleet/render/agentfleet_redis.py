"""AgentFleet children: the managed Redis (StatefulSet, Services, NetworkPolicy) of spec.redis.deploy.

Pure; agentfleet.render.agentfleet re-exports it.
"""

from __future__ import annotations

from typing import Any

from agentfleet_contract.agentfleet import AgentFleet

from agentfleet.capacity import parse_quantity
from agentfleet.render.agentfleet_names import (
    FLEET_LABEL,
    REDIS_PASSWORD_KEY,
    REDIS_PORT,
    REDIS_UID,
    _container_security,
    _fleet,
    _meta,
    _pod_security,
    labels,
    redis_name,
    redis_secret_name,
    selector,
)
from agentfleet.render.common import DEFAULT_PEERS, Peers, RenderError

# maxmemory as a share of the pod's memory limit: the rest is the AOF rewrite's copy-on-write,
# client buffers and the allocator's overhead. At maxmemory Redis refuses writes (noeviction:
# evicting would silently drop tasks); the task API answers 503 and reports it on /readyz.
REDIS_MAXMEMORY_SHARE = 0.75


# --- Managed Redis -----------------------------------------------------------------------------


def redis_maxmemory(memory: str) -> int:
    """Bytes Redis may hold under a pod memory limit of ``memory`` (a Kubernetes quantity)."""
    return int(parse_quantity(memory) * REDIS_MAXMEMORY_SHARE)


# Pods allowed to reach a managed Redis besides the fleet's own: the operator (the chart's pod
# labels, any namespace) reads queue depth and task statistics from it; it still needs the password.
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
