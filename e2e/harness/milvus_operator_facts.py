"""What the Milvus Operator's ``Milvus`` kind accepts, for the fields agentfleet renders.

The Milvus Operator's Go module is refused by the module proxy here, so its CRD cannot be taken as
a dependency like KEDA's or the Prometheus Operator's. These are facts read from its published
``config/crd/bases/milvus.io_milvuses.yaml`` (github.com/milvus-io/milvus-operator, commit
e104991155b1, the version that is served and stored; the name ``v1beta1`` and the
``components.image``/``mode: cluster`` usage as in the project's own v1beta1 samples), written
down here as a schema of our own that covers only the paths the VectorIndex controller writes
(``agentfleet.render.vectorindex.render_milvus``):

- ``spec.mode``: string, enum ``cluster`` | ``standalone``, default ``standalone``;
- ``spec.components.image``: string (the Milvus image for every component);
- ``spec.components.<component>`` for ``queryNode`` and ``standalone``: ``replicas`` integer
  (int32, minimum 0) and ``resources`` with ``limits``/``requests`` maps of quantities
  (int-or-string);
- ``spec.dependencies.etcd.inCluster`` and ``spec.dependencies.storage.inCluster``:
  ``deletionPolicy`` string enum ``Delete`` | ``Retain`` (default ``Retain``), ``pvcDeletion``
  boolean, ``values`` an object whose fields are kept as given (the sub-chart's values; the
  storage's ``persistence.size`` is the MinIO chart's volume size);
- ``status.conditions[]`` (``type``, ``status``, ``reason``, ``message``) and ``status.endpoint``
  (string), which the controller reads back.

Everything else in the real schema is left out: the CRD installed from this is structural and
prunes nothing we send silently, because the e2e test applies with strict field validation (an
unknown field is an error). A field we render that is not listed here fails that test, and the
remedy is to check the Milvus Operator's schema and extend these facts, never the reverse.
"""

from __future__ import annotations

from typing import Any

GROUP = "milvus.io"
VERSION = "v1beta1"
# The rendering targets this release line of the Milvus Operator (README, "VectorIndex").
MILVUS_OPERATOR_SCHEMA = "milvus-io/milvus-operator config/crd/bases/milvus.io_milvuses.yaml, milvus.io/v1beta1"

_QUANTITY = {"anyOf": [{"type": "integer"}, {"type": "string"}], "x-kubernetes-int-or-string": True}
_RESOURCES = {
    "type": "object",
    "properties": {
        "limits": {"type": "object", "additionalProperties": _QUANTITY},
        "requests": {"type": "object", "additionalProperties": _QUANTITY},
    },
}
_COMPONENT = {
    "type": "object",
    "properties": {
        "replicas": {"type": "integer", "format": "int32", "minimum": 0},
        "resources": _RESOURCES,
    },
}
_IN_CLUSTER = {
    "type": "object",
    "properties": {
        "deletionPolicy": {"type": "string", "enum": ["Delete", "Retain"], "default": "Retain"},
        "pvcDeletion": {"type": "boolean"},
        "values": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    },
}
_DEPENDENCY = {"type": "object", "properties": {"inCluster": _IN_CLUSTER}}


def crd() -> dict[str, Any]:
    """A CustomResourceDefinition of ``milvuses.milvus.io`` holding only the facts above."""
    schema = {
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": {
                "type": "object",
                "properties": {
                    "mode": {"type": "string", "enum": ["cluster", "standalone"], "default": "standalone"},
                    "components": {
                        "type": "object",
                        "properties": {"image": {"type": "string"}, "queryNode": _COMPONENT, "standalone": _COMPONENT},
                    },
                    "dependencies": {"type": "object", "properties": {"etcd": _DEPENDENCY, "storage": _DEPENDENCY}},
                },
            },
            "status": {
                "type": "object",
                "properties": {
                    "endpoint": {"type": "string"},
                    "conditions": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["type", "status"],
                            "properties": {
                                k: {"type": "string"}
                                for k in ("type", "status", "reason", "message", "lastTransitionTime")
                            },
                        },
                    },
                },
            },
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"milvuses.{GROUP}"},
        "spec": {
            "group": GROUP,
            "names": {
                "kind": "Milvus",
                "listKind": "MilvusList",
                "plural": "milvuses",
                "singular": "milvus",
                "shortNames": ["mi"],
            },
            "scope": "Namespaced",
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "schema": {"openAPIV3Schema": schema},
                    "subresources": {"status": {}},
                }
            ],
        },
    }
