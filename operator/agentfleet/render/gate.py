"""The evaluation gate's candidate: the changed spec's workers beside the serving ones, on a
private queue (docs/evaluation-gate.md). Pure.

The candidate is derived from what render_runtime renders for the changed spec, so it runs exactly
what would roll out: the same pod template, image, environment, keys and egress policy, with
three differences. Its runtime document names the fleet ``FLEET~candidate``, so every Redis key it
reads or writes (the task stream among them) is its own and no task API writes there: a tenant's
task never reaches an unpromoted version. Its pods carry the component ``candidate``, so the
serving Deployment's selector, the scale subresource and the PodDisruptionBudget never count them.
It has no task API: only the evaluation Job submits to it.

Every name the gate's objects carry is made once per decide (``gate_names``: a frozen ``GateNames``
from the fleet's name and namespace) and handed to each renderer, which reads it from there.
"""

from __future__ import annotations

import copy
import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from agentfleet_contract.agentfleet import AgentFleet, GateTaskSet, RolloutEvaluation
from agentfleet_contract.gate import BASELINE_FLEET_SUFFIX, CANDIDATE_FLEET_SUFFIX, GATE_KEY_ENV, GATE_KEY_SECRET_KEY

from agentfleet.render.agentfleet import (
    COMPONENT_LABEL,
    CONFIG_HASH_ANNOTATION,
    CONFIG_KEY,
    REDIS_PORT,
    RUNTIME_MODULE,
    Egress,
    config_hash,
    config_map_name,
    config_text,
    labels,
    redis_password_ref,
    render_secret,
    selector,
    worker_egress_name,
    worker_name,
)
from agentfleet.render.agentfleet_names import _container_security, _fleet, _pod_security
from agentfleet.render.common import child_meta
from agentfleet.render.modelreplicaset_names import canary_service_name

CANDIDATE = "candidate"
# The current version's private workers for the gate: the serving version, on its own stream
# (FLEET~current), so that tenants' tasks on the serving workers never queue ahead of the gate's.
BASELINE = "baseline"
RBAC = "rbac.authorization.k8s.io/v1"


def candidate_name(fleet: str, role: str = CANDIDATE) -> str:
    return f"{fleet}-{role}"


def candidate_config_name(fleet: str, role: str = CANDIDATE) -> str:
    return f"{config_map_name(fleet)}-{role}"


def candidate_egress_name(fleet: str, role: str = CANDIDATE) -> str:
    return f"{worker_egress_name(fleet)}-{role}"


def results_name(fleet: str, candidate: str) -> str:
    """The ConfigMap the evaluation Job appends each (version, task) result to."""
    return f"{fleet}-gate-{candidate[:10]}"


def private_fleet(fleet: str, role: str = CANDIDATE) -> str:
    """The fleet name in a private version's runtime document: the prefix of all its Redis keys."""
    return fleet + (CANDIDATE_FLEET_SUFFIX if role == CANDIDATE else BASELINE_FLEET_SUFFIX)


@dataclass(frozen=True)
class PrivateNames:
    """A private version's objects (the candidate's, or the serving version's baseline): its worker
    Deployment, runtime ConfigMap and egress policy, and the fleet name its runtime document gives
    (the prefix of every Redis key it uses)."""

    workers: str
    config: str
    egress: str
    fleet: str

    @classmethod
    def of(cls, fleet: str, role: str) -> PrivateNames:
        return cls(
            candidate_name(fleet, role),
            candidate_config_name(fleet, role),
            candidate_egress_name(fleet, role),
            private_fleet(fleet, role),
        )


@dataclass(frozen=True)
class GateNames:
    """The names one fleet's gate reads, writes and deletes, made once (``of``) and passed to every
    renderer and step of the gate's decide; the label sets of its objects come with them."""

    fleet: str
    namespace: str
    # The serving runtime's objects, which a private version's are copies of.
    serving_config: str
    serving_workers: str
    serving_egress: str
    gate: str  # the Job's ServiceAccount, Role, RoleBinding and egress policy
    promoted: str  # the ConfigMap of the serving version's answer fields
    candidate: PrivateNames
    baseline: PrivateNames
    gate_labels: Mapping[str, str]  # of every object of the gate, and of the Job's pod
    gate_selector: Mapping[str, str]  # the Job's pod
    redis_selector: Mapping[str, str]  # the managed Redis' pods

    @classmethod
    def of(cls, fleet: str, namespace: str) -> GateNames:
        return cls(
            fleet=fleet,
            namespace=namespace,
            serving_config=config_map_name(fleet),
            serving_workers=worker_name(fleet),
            serving_egress=worker_egress_name(fleet),
            gate=gate_name(fleet),
            promoted=promoted_name(fleet),
            candidate=PrivateNames.of(fleet, CANDIDATE),
            baseline=PrivateNames.of(fleet, BASELINE),
            gate_labels=labels(fleet, GATE),
            gate_selector=selector(fleet, GATE),
            redis_selector=selector(fleet, "redis"),
        )

    def private(self, role: str) -> PrivateNames:
        return self.candidate if role == CANDIDATE else self.baseline

    def results(self, candidate: str) -> str:
        return results_name(self.fleet, candidate)

    def job(self, candidate: str) -> str:
        return job_name(self.fleet, candidate)

    def key(self, candidate: str) -> str:
        return key_name(self.fleet, candidate)

    def meta(self, af: AgentFleet, name: str) -> dict[str, Any]:
        """metadata of one of the gate's objects: its own copy of the gate's labels, owned by the fleet."""
        return child_meta(af, name, dict(self.gate_labels), namespace=self.namespace)


def gate_names(af: AgentFleet) -> GateNames:
    """The gate's names for ``af`` (a RenderError without metadata.name and namespace)."""
    return GateNames.of(*_fleet(af))


def _relabel(meta: dict[str, Any], role: str = CANDIDATE) -> None:
    meta.setdefault("labels", {})[COMPONENT_LABEL] = role


def to_canaries(doc: dict[str, Any], canaries: frozenset[str]) -> dict[str, Any]:
    """The runtime document with each tier whose ModelReplicaSet is in ``canaries`` calling that
    set's canary replica only: its canary Service's EndpointSlices, or, for workers that may not
    reach the API server, the canary Service's name as the one endpoint (headless: the replica's
    address)."""
    routing = doc.get("modelRouting")
    if not canaries or not isinstance(routing, dict):
        return doc
    routing = copy.deepcopy(routing)
    for tier in ("primary", "routine"):
        cfg = routing.get(tier)
        if not isinstance(cfg, dict) or cfg.get("modelReplicaSet") not in canaries:
            continue
        mrs = cfg["modelReplicaSet"]
        cfg["service"] = canary_service_name(mrs)
        cfg["endpoints"] = [
            e.replace(f"//{mrs}.", f"//{canary_service_name(mrs)}.", 1) for e in cfg.get("endpoints", [])
        ]
    return {**doc, "modelRouting": routing}


def render_candidate(
    names: GateNames,
    doc: dict[str, Any],
    runtime: list[dict[str, Any]],
    *,
    replicas: int = 1,
    canaries: frozenset[str] = frozenset(),
    role: str = CANDIDATE,
) -> list[dict[str, Any]]:
    """The candidate's ConfigMap, egress policy and worker Deployment, from render_runtime's
    children of the changed spec (``runtime``) and its runtime document (``doc``); ``canaries``:
    the ModelReplicaSets whose canary replica it calls instead of their serving replicas.
    ``role`` BASELINE renders the serving version's private workers the same way (render_baseline)."""
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in runtime}
    own = names.private(role)
    private = {**to_canaries(doc, canaries), "fleet": own.fleet}
    private.pop("legacyKeys", None)  # a private stream has no keys of the old layout
    text = config_text(private)
    cm = copy.deepcopy(by_name[("ConfigMap", names.serving_config)])
    cm["metadata"]["name"] = own.config
    _relabel(cm["metadata"], role)
    cm["data"] = {CONFIG_KEY: text}  # no token hashes: a private version serves no task API
    out = [cm]
    policy = by_name.get(("NetworkPolicy", names.serving_egress))
    if policy is not None:
        policy = copy.deepcopy(policy)
        policy["metadata"]["name"] = own.egress
        _relabel(policy["metadata"], role)
        policy["spec"]["podSelector"]["matchLabels"][COMPONENT_LABEL] = role
        out.append(policy)
    dep = copy.deepcopy(by_name[("Deployment", names.serving_workers)])
    dep["metadata"]["name"] = own.workers
    _relabel(dep["metadata"], role)
    spec = dep["spec"]
    spec["replicas"] = replicas
    spec["selector"]["matchLabels"][COMPONENT_LABEL] = role
    template = spec["template"]
    template["metadata"]["labels"][COMPONENT_LABEL] = role
    template["metadata"]["annotations"][CONFIG_HASH_ANNOTATION] = config_hash(text)
    # Only the runtime document is the private version's own: the token hashes its /metrics checks
    # (api-tokens) stay the serving ConfigMap's, which the private one does not carry.
    for volume in template["spec"]["volumes"]:
        if volume["name"] == "config":
            volume["configMap"]["name"] = own.config
    out.append(dep)
    return out


def render_baseline(names: GateNames, doc: dict[str, Any], runtime: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The serving version's private workers for the gate, as the candidate's (one replica, the
    same worker settings, so the same concurrency): on FLEET~current, calling the serving replicas."""
    return render_candidate(names, doc, runtime, role=BASELINE)


# --- the record of what serves, and the evaluation Job -------------------------------------------

GATE = "gate"  # the component of the Job, its ServiceAccount, Role, binding and egress policy
PROMOTED_KEY = "fields"  # the promoted ConfigMap's key: the serving version's answer fields (JSON)
SHIPPED_DIR = "/usr/share/agentfleet/eval"  # the shipped task sets, in the runtime image
TASKS_DIR = "/etc/agentfleet/tasks"  # spec.rollout.evaluation.taskSet.configMapRef, mounted
CURRENT_CONFIG_DIR = "/etc/agentfleet/current"
CANDIDATE_CONFIG_DIR = "/etc/agentfleet/candidate"
GATE_RESOURCES = {"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}}
# A pod killed mid-gate is retried; the program resumes from the results ConfigMap, so a retry
# costs only the tasks in flight when it died.
GATE_BACKOFF_LIMIT = 6
API_SERVER_PORTS = (443, 6443)
DNS_PORT = 53


def gate_name(fleet: str) -> str:
    """The Job's ServiceAccount, Role, RoleBinding and egress policy."""
    return f"{fleet}-gate"


def promoted_name(fleet: str) -> str:
    """The ConfigMap that keeps the serving version's answer fields (plan.promoted_fields)."""
    return f"{fleet}-promoted"


def job_name(fleet: str, candidate: str) -> str:
    """One Job per candidate, named like its results ConfigMap: a superseded gate's is found by name."""
    return results_name(fleet, candidate)


def _config_map(af: AgentFleet, names: GateNames, name: str, data: dict[str, str]) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": names.meta(af, name), "data": data}


def render_promoted(af: AgentFleet, names: GateNames, fields: dict[str, Any]) -> dict[str, Any]:
    """FLEET-promoted: the answer fields the serving workers run (serving_spec reads them back)."""
    return _config_map(af, names, names.promoted, {PROMOTED_KEY: json.dumps(fields, sort_keys=True)})


def render_results(af: AgentFleet, names: GateNames, candidate: str) -> dict[str, Any]:
    """The gate's results ConfigMap, empty: the Job writes ``sample`` and one key per (version,
    task). Created once (never applied again: the Job's keys are its own); kept after the gate for
    the record, and deleted with the fleet."""
    return _config_map(af, names, names.results(candidate), {})


def key_name(fleet: str, candidate: str) -> str:
    """The Secret holding the gate's key, named like its results ConfigMap."""
    return results_name(fleet, candidate)


def render_gate_key(af: AgentFleet, names: GateNames, candidate: str, value: str) -> dict[str, Any]:
    """The gate's key: a Secret only the operator (which verifies) and the Job (which signs, from
    its environment) read. Created once, owned by the fleet; no Role the operator makes grants it."""
    return render_secret(af, names.key(candidate), GATE_KEY_SECRET_KEY, value, GATE)


def task_set_source(ts: GateTaskSet) -> tuple[str, dict[str, Any] | None]:
    """The task set's path in the Job's pod, and the volume it needs (None: it ships in the image)."""
    if ts.shipped is not None:
        return f"{SHIPPED_DIR}/{ts.shipped}-tasks.yaml", None  # e2e/eval/NAME-tasks.yaml in the image
    ref = ts.config_map_ref
    assert ref is not None  # the schema's rule: exactly one source
    volume = {"name": "tasks", "configMap": {"name": ref.name, "items": [{"key": ref.key, "path": ref.key}]}}
    return f"{TASKS_DIR}/{ref.key}", volume


def gate_args(names: GateNames, evaluation: RolloutEvaluation, candidate: str, task_set: str) -> list[str]:
    budget = evaluation.budget
    return [
        "gate",
        *("--fleet", names.fleet, "--namespace", names.namespace, "--results-configmap", names.results(candidate)),
        *("--task-set", task_set, "--part", evaluation.part),
        *("--sample", str(evaluation.sample), "--seed", str(evaluation.seed)),
        *("--concurrency", str(evaluation.concurrency), "--side-effects", evaluation.side_effects),
        *("--timeout-seconds", str(budget.timeout_seconds), "--max-tokens", str(budget.max_tokens)),
        *("--current-config", f"{CURRENT_CONFIG_DIR}/{CONFIG_KEY}"),
        *("--candidate-config", f"{CANDIDATE_CONFIG_DIR}/{CONFIG_KEY}"),
    ]


def render_gate_identity(af: AgentFleet, names: GateNames, candidate: str) -> list[dict[str, Any]]:
    """The Job's ServiceAccount and a Role of get and patch on exactly its results ConfigMap: the
    program appends results there, and can read or change nothing else (no Secret, no other key's
    ConfigMap, not the fleet)."""
    name = names.gate
    rule = {
        "apiGroups": [""],
        "resources": ["configmaps"],
        "resourceNames": [names.results(candidate)],
        "verbs": ["get", "patch"],
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": names.meta(af, name)},
        {"apiVersion": RBAC, "kind": "Role", "metadata": names.meta(af, name), "rules": [rule]},
        {
            "apiVersion": RBAC,
            "kind": "RoleBinding",
            "metadata": names.meta(af, name),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": names.namespace}],
        },
    ]


def _anywhere(egress: Egress) -> list[dict[str, Any]]:
    """Every address but the denied ranges, and the pods of every namespace (some CNIs match only
    addresses outside the cluster with ipBlock: render_worker_egress)."""
    blocks = []
    for cidr, version in (("0.0.0.0/0", 4), ("::/0", 6)):
        nets = (ipaddress.ip_network(c, strict=False) for c in egress.denied)
        block: dict[str, Any] = {"cidr": cidr}
        if ex := sorted({str(n) for n in nets if n.version == version}):
            block["except"] = ex
        blocks.append({"ipBlock": block})
    return [*blocks, {"namespaceSelector": {}}]


def redis_ports(af: AgentFleet) -> list[int]:
    """The ports the fleet's Redis answers on: its URL's, or each Sentinel's and the master's."""
    r = af.spec.redis
    if r.sentinel is not None:
        ports = {int(a.rsplit(":", 1)[1]) if ":" in a else 26379 for a in r.sentinel.addresses}
        return sorted(ports | {REDIS_PORT})
    parsed = urlsplit(r.url or "")
    return [parsed.port or REDIS_PORT]


def render_gate_egress(af: AgentFleet, names: GateNames, egress: Egress) -> dict[str, Any]:
    """What the Job's pod may reach: DNS, the fleet's Redis (the streams of both versions) and the
    API server (its results ConfigMap); nothing else. The task set and the answers it scores are
    tenant and model input: the program that reads them has no other way out."""
    dns = {"ports": [{"protocol": p, "port": DNS_PORT} for p in ("UDP", "TCP")]}
    if af.spec.redis.deploy is not None:
        redis = {
            "to": [{"podSelector": {"matchLabels": dict(names.redis_selector)}}],
            "ports": [{"protocol": "TCP", "port": REDIS_PORT}],
        }
    else:
        redis = {"to": _anywhere(egress), "ports": [{"protocol": "TCP", "port": p} for p in redis_ports(af)]}
    if egress.api_server:
        # The chart may name a bare address (10.0.0.1): an ipBlock takes only a CIDR (10.0.0.1/32).
        api = {"to": [{"ipBlock": {"cidr": str(ipaddress.ip_network(c, strict=False))}} for c in egress.api_server]}
    else:  # its addresses unknown: its ports only
        api = {"to": _anywhere(egress), "ports": [{"protocol": "TCP", "port": p} for p in API_SERVER_PORTS]}
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": names.meta(af, names.gate),
        "spec": {
            "podSelector": {"matchLabels": dict(names.gate_selector)},
            "policyTypes": ["Egress", "Ingress"],  # no ingress: nothing calls the Job
            "egress": [dns, redis, api],
        },
    }


def render_gate_job(
    af: AgentFleet,
    names: GateNames,
    evaluation: RolloutEvaluation,
    candidate: str,
    *,
    image: str,
    image_pull_policy: str | None = None,
) -> dict[str, Any]:
    """The evaluation Job: ``python -m agentfleet_runtime gate`` from the operator's runtime image
    (as the ingestion Job), the serving and the candidate runtime documents mounted read-only, the
    fleet's Redis password as the workers get it, non-root on a read-only root."""
    task_set, tasks_volume = task_set_source(evaluation.task_set)
    items = [{"key": CONFIG_KEY, "path": CONFIG_KEY}]
    volumes: list[dict[str, Any]] = [
        {"name": "current", "configMap": {"name": names.baseline.config, "items": items}},
        {"name": "candidate", "configMap": {"name": names.candidate.config, "items": items}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}},
    ]
    mounts = [
        {"name": "current", "mountPath": CURRENT_CONFIG_DIR, "readOnly": True},
        {"name": "candidate", "mountPath": CANDIDATE_CONFIG_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    if tasks_volume is not None:
        volumes.append(tasks_volume)
        mounts.append({"name": "tasks", "mountPath": TASKS_DIR, "readOnly": True})
    env: list[dict[str, Any]] = [
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "HOME", "value": "/tmp"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]
    if (ref := redis_password_ref(af)) is not None:
        env.append({"name": "AGENTFLEET_REDIS_PASSWORD", "valueFrom": {"secretKeyRef": ref}})
    # The key every result is signed with: the operator counts only results that verify under it.
    key_ref = {"name": names.key(candidate), "key": GATE_KEY_SECRET_KEY}
    env.append({"name": GATE_KEY_ENV, "valueFrom": {"secretKeyRef": key_ref}})
    container: dict[str, Any] = {
        "name": GATE,
        "image": image,
        "command": ["python", "-m", RUNTIME_MODULE],
        "args": gate_args(names, evaluation, candidate, task_set),
        "env": env,
        "resources": copy.deepcopy(GATE_RESOURCES),
        "volumeMounts": mounts,
        "securityContext": _container_security(),
    }
    if image_pull_policy:
        container["imagePullPolicy"] = image_pull_policy
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": names.meta(af, names.job(candidate)),
        "spec": {
            "backoffLimit": GATE_BACKOFF_LIMIT,
            # The gate holds at its time budget; the Job stops there too.
            "activeDeadlineSeconds": evaluation.budget.timeout_seconds,
            "template": {
                "metadata": {"labels": dict(names.gate_labels)},
                "spec": {
                    "restartPolicy": "Never",
                    "serviceAccountName": names.gate,
                    "automountServiceAccountToken": True,  # it patches its results ConfigMap
                    "enableServiceLinks": False,
                    "securityContext": _pod_security(),
                    "containers": [container],
                    "volumes": volumes,
                },
            },
        },
    }


def render_gate(
    af: AgentFleet,
    names: GateNames,
    evaluation: RolloutEvaluation,
    candidate: str,
    *,
    image: str,
    egress: Egress | None,
    image_pull_policy: str | None = None,
) -> list[dict[str, Any]]:
    """What a gate's start applies after the candidate, in order: the Job's identity, its egress
    policy (when the operator limits the workers'), the Job. The results ConfigMap is created
    before them (render_results)."""
    policy = [render_gate_egress(af, names, egress)] if egress is not None else []
    job = render_gate_job(af, names, evaluation, candidate, image=image, image_pull_policy=image_pull_policy)
    return [*render_gate_identity(af, names, candidate), *policy, job]
