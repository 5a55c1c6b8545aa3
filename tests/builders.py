"""Fluent builders for the Kubernetes objects tests feed the operator: ModelReplicaSets, AgentFleets,
VectorIndexes, nodes, pods.

One place for unit and e2e tests alike (e2e tests import ``tests.builders``; product code never
does). Each builder starts from the smallest valid object, each method sets one thing and returns
the builder, and ``obj()`` returns a fresh dict::

    MRS("llama").replicas(2).tp(4).obj()
    Fleet("support").model("llama-8b").workers(replicas=3).tool("search", "Retrieval").obj()
    Index("docs").collection("handbook").configmap_source("docs", "v1").obj()
    Node("h100-0").gpus(8).block("b1").obj()
    Pod("m-0").replica("m", "m-0").gpus(8).obj()
"""

from __future__ import annotations

import copy
from typing import Any, Self

GROUP_VERSION = "agentfleet.io/v1alpha1"
H100 = "NVIDIA-H100-80GB-HBM3"
GPU = "nvidia.com/gpu"
LLAMA_8B = "meta-llama/Llama-3.1-8B-Instruct"


class _Builder:
    def __init__(self, body: dict[str, Any]) -> None:
        self._o = body

    def obj(self) -> dict[str, Any]:
        return copy.deepcopy(self._o)

    def ns(self, namespace: str) -> Self:
        self._o["metadata"]["namespace"] = namespace
        return self

    def meta(self, **fields: Any) -> Self:
        """metadata fields as they are spelled in the object (uid, generation, resourceVersion, ...)."""
        self._o["metadata"].update(fields)
        return self

    def label(self, key: str, value: str) -> Self:
        self._o["metadata"].setdefault("labels", {})[key] = value
        return self

    def labels(self, labels: dict[str, str]) -> Self:
        self._o["metadata"].setdefault("labels", {}).update(labels)
        return self

    def annotation(self, key: str, value: str) -> Self:
        self._o["metadata"].setdefault("annotations", {})[key] = value
        return self


class MRS(_Builder):
    """A ModelReplicaSet: Llama-3.1-8B on one H100, tensor and pipeline parallel 1, one replica."""

    def __init__(self, name: str) -> None:
        super().__init__(
            {
                "apiVersion": GROUP_VERSION,
                "kind": "ModelReplicaSet",
                "metadata": {"name": name},
                "spec": {
                    "model": {"name": LLAMA_8B},
                    "engine": {"tensorParallelSize": 1, "pipelineParallelSize": 1, "maxModelLen": 8192},
                    "gpu": {"product": H100},
                    "replicas": 1,
                },
            }
        )

    @property
    def _spec(self) -> dict[str, Any]:
        return self._o["spec"]

    def replicas(self, n: int) -> Self:
        self._spec["replicas"] = n
        return self

    def tp(self, n: int) -> Self:
        self._spec["engine"]["tensorParallelSize"] = n
        return self

    def pp(self, n: int) -> Self:
        self._spec["engine"]["pipelineParallelSize"] = n
        return self

    def engine(self, **fields: Any) -> Self:
        self._spec["engine"].update(fields)
        return self

    def model(self, name: str, served: str | None = None) -> Self:
        self._spec["model"] = {"name": name, **({"servedName": served} if served else {})}
        return self

    def gpu(self, product: str) -> Self:
        self._spec["gpu"] = {"product": product}
        return self

    def placement(self, **fields: Any) -> Self:
        self._spec.setdefault("placement", {}).update(fields)
        return self

    def lifecycle(self, drain: float, backoff: float, max_backoff: float) -> Self:
        self._spec["lifecycle"] = {
            "drainTimeoutSeconds": drain,
            "restartBackoffSeconds": backoff,
            "maxRestartBackoffSeconds": max_backoff,
        }
        return self

    def autoscaling(self, **fields: Any) -> Self:
        self._spec.setdefault("autoscaling", {}).update(fields)
        return self

    def spec(self, **fields: Any) -> Self:
        """Any other spec field, replaced whole (camelCase, as in the object)."""
        self._spec.update(fields)
        return self

    def pod_template(self, template: dict[str, Any]) -> Self:
        """The pod template overlay (spec.podTemplate), strategic-merged onto every replica's pods."""
        self._spec["podTemplate"] = copy.deepcopy(template)
        return self

    def whole_spec(self, spec: dict[str, Any]) -> Self:
        """The whole spec, as a test's table gives it (none of the builder's defaults kept)."""
        self._o["spec"] = copy.deepcopy(spec)
        return self

    def status(self, status: dict[str, Any]) -> Self:
        """The whole status, as the operator (or a test standing in for it) wrote it."""
        self._o["status"] = copy.deepcopy(status)
        return self

    def condition(
        self, type_: str, status: bool, reason: str, message: str = "", since: str = "2026-01-01T00:00:00Z"
    ) -> Self:
        conds = self._o.setdefault("status", {}).setdefault("conditions", [])
        conds[:] = [c for c in conds if c["type"] != type_]
        conds.append(
            {
                "type": type_,
                "status": "True" if status else "False",
                "reason": reason,
                "message": message,
                "lastTransitionTime": since,
            }
        )
        return self


class _Spec(_Builder):
    @property
    def _spec(self) -> dict[str, Any]:
        return self._o["spec"]

    def spec(self, **fields: Any) -> Self:
        """Any other spec field, replaced whole (camelCase, as in the object)."""
        self._spec.update(fields)
        return self

    def pod_template(self, template: dict[str, Any]) -> Self:
        """The pod template overlay (spec.podTemplate), strategic-merged onto what the operator renders."""
        self._spec["podTemplate"] = copy.deepcopy(template)
        return self

    def status(self, status: dict[str, Any]) -> Self:
        self._o["status"] = copy.deepcopy(status)
        return self


class Fleet(_Spec):
    """An AgentFleet: agent workers on ``llama-8b`` (a ModelReplicaSet in the same namespace) with
    their tasks in redis://redis:6379/0; no tools, no index."""

    def __init__(self, name: str) -> None:
        super().__init__(
            {
                "apiVersion": GROUP_VERSION,
                "kind": "AgentFleet",
                "metadata": {"name": name},
                "spec": {"modelRef": {"name": "llama-8b"}, "redis": {"url": "redis://redis:6379/0"}},
            }
        )

    def model(self, name: str) -> Self:
        self._spec["modelRef"] = {"name": name}
        return self

    def routine_model(self, name: str, steps: list[str]) -> Self:
        self._spec["routineModelRef"] = {"name": name}
        self._spec["routineSteps"] = list(steps)
        return self

    def index(self, name: str) -> Self:
        self._spec["vectorIndexRef"] = {"name": name}
        return self

    def workers(self, **fields: Any) -> Self:
        """spec.workers fields (replicas, concurrency, cpu, memory, ...)."""
        self._spec.setdefault("workers", {}).update(fields)
        return self

    def tool(self, name: str, type_: str, **fields: Any) -> Self:
        """One more tool: ``tool("ticket", "HTTP", http={"url": ...})``."""
        self._spec.setdefault("tools", []).append({"name": name, "type": type_, **fields})
        return self

    def prompt(self, inline: str) -> Self:
        self._spec["systemPrompt"] = {"inline": inline}
        return self

    def gate(self, shipped: str = "postgres-manual", **evaluation: Any) -> Self:
        """spec.rollout.evaluation: a shipped task set by name, and any other of its fields."""
        self._spec["rollout"] = {"evaluation": {"taskSet": {"shipped": shipped}, **evaluation}}
        return self

    def redis(self, url: str, password: tuple[str, str] | None = None) -> Self:
        """The task store; ``password``: (Secret name, key)."""
        self._spec["redis"] = {"url": url}
        if password:
            self._spec["redis"]["passwordSecretRef"] = {"name": password[0], "key": password[1]}
        return self


class Index(_Spec):
    """A VectorIndex: collection ``docs`` in the Milvus at http://milvus:19530, ingested from the
    ConfigMap ``docs`` at revision v1."""

    def __init__(self, name: str) -> None:
        super().__init__(
            {
                "apiVersion": GROUP_VERSION,
                "kind": "VectorIndex",
                "metadata": {"name": name},
                "spec": {
                    "milvus": {"uri": "http://milvus:19530"},
                    "collection": "docs",
                    "source": {"configMap": {"name": "docs"}, "revision": "v1"},
                },
            }
        )

    def milvus(self, uri: str, **fields: Any) -> Self:
        self._spec["milvus"] = {"uri": uri, **fields}
        return self

    def collection(self, name: str) -> Self:
        self._spec["collection"] = name
        return self

    def configmap_source(self, name: str, revision: str) -> Self:
        self._spec["source"] = {"configMap": {"name": name}, "revision": revision}
        return self

    def revision(self, revision: str) -> Self:
        self._spec["source"]["revision"] = revision
        return self


class Node(_Builder):
    """A Ready GPU node: 8 H100s (NVIDIA's product and memory labels), its own NVLink domain, zone z1,
    tainted nvidia.com/gpu=present:NoSchedule as GPU pools are."""

    def __init__(self, name: str) -> None:
        super().__init__(
            {
                "metadata": {
                    "name": name,
                    "labels": {
                        "kubernetes.io/hostname": name,
                        "nvidia.com/gpu.product": H100,
                        "nvidia.com/gpu.memory": "81559",
                        "agentfleet.io/nvlink-domain": f"nvl-{name}",
                        "topology.kubernetes.io/zone": "z1",
                    },
                },
                "spec": {"taints": [{"key": GPU, "value": "present", "effect": "NoSchedule"}]},
                "status": {"allocatable": {GPU: "8"}, "conditions": [{"type": "Ready", "status": "True"}]},
            }
        )

    def gpus(self, n: int) -> Self:
        self._o["status"]["allocatable"][GPU] = str(n)
        return self

    def block(self, block: str) -> Self:
        return self.label("agentfleet.io/topology-block", block)

    def zone(self, zone: str) -> Self:
        return self.label("topology.kubernetes.io/zone", zone)

    def nvlink(self, domain: str) -> Self:
        return self.label("agentfleet.io/nvlink-domain", domain)

    def product(self, product: str, memory_mib: int) -> Self:
        return self.labels({"nvidia.com/gpu.product": product, "nvidia.com/gpu.memory": str(memory_mib)})


class Pod(_Builder):
    """A pod: one container, no spec beyond it; add what a test reads."""

    def __init__(self, name: str, container: str = "main") -> None:
        super().__init__(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {"name": name},
                "spec": {"containers": [{"name": container}]},
            }
        )

    @property
    def _container(self) -> dict[str, Any]:
        return self._o["spec"]["containers"][0]

    def image(self, image: str) -> Self:
        self._container["image"] = image
        return self

    def gpus(self, n: int, *, limits: bool = True) -> Self:
        """Request (and by default limit) ``n`` GPUs: the device plugin's resource needs both equal."""
        res = self._container.setdefault("resources", {})
        res["requests"] = {GPU: str(n)}
        if limits:
            res["limits"] = {GPU: str(n)}
        return self

    def tolerate_gpus(self) -> Self:
        self._o["spec"]["tolerations"] = [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]
        return self

    def node_affinity(self, values: dict[str, list[str]]) -> Self:
        """Required node affinity: each label key's value among the listed ones."""
        term = {"matchExpressions": [{"key": k, "operator": "In", "values": v} for k, v in values.items()]}
        self._o["spec"]["affinity"] = {
            "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}
        }
        return self

    def restart(self, policy: str) -> Self:
        self._o["spec"]["restartPolicy"] = policy
        return self

    def on_node(self, node: str) -> Self:
        self._o["spec"]["nodeName"] = node
        return self

    def created(self, ts: str) -> Self:
        return self.meta(creationTimestamp=ts)

    def deleting(self, since: str = "2026-01-01T00:01:00Z") -> Self:
        return self.meta(deletionTimestamp=since)

    def phase(self, phase: str, reason: str | None = None, ip: str | None = None) -> Self:
        self._o.setdefault("status", {}).update({"phase": phase, "podIP": ip, "reason": reason})
        return self

    def ready(self, ready: bool = True, since: str | None = None) -> Self:
        return self.condition("Ready", ready, since=since)

    def condition(
        self, type_: str, status: bool, reason: str | None = None, message: str | None = None, since: str | None = None
    ) -> Self:
        cond: dict[str, Any] = {"type": type_, "status": "True" if status else "False"}
        cond.update(
            {
                k: v
                for k, v in (("reason", reason), ("message", message), ("lastTransitionTime", since))
                if v is not None
            }
        )
        st = self._o.setdefault("status", {})
        st["conditions"] = [c for c in st.get("conditions", []) if c["type"] != type_] + [cond]
        return self
