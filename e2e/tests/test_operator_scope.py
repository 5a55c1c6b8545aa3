"""The e2e tier's modules share one cluster on parallel workers (e2e/harness/testplan.py): a module's
operator serves only the namespaces its own tests get (e2e-<module>-<6 hex>), so it never reconciles
an object of another module's, which that module's own operator is reconciling at the same time."""

from __future__ import annotations

import time
import uuid

import pytest

from e2e.harness import operator as fx
from e2e.harness.cluster import namespace_prefix
from e2e.harness.operator import eventually
from tests.builders import MRS

crds, operator = fx.crds, fx.operator
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def observed(cluster, ns: str, name: str) -> int | None:
    obj = cluster.json("-n", ns, "get", "mrs", name)
    return (obj.get("status") or {}).get("observedGeneration")


def test_a_modules_operator_leaves_another_modules_namespace_alone(operator, namespace, cluster) -> None:
    # Another module's namespace, as its `namespace` fixture would name it.
    other = f"{namespace_prefix('e2e.tests.test_operator_scope_other')}{uuid.uuid4().hex[:6]}"
    with cluster.fresh_namespace(other):
        for ns in (namespace, other):
            cluster.apply(MRS("stuck").placement(nodeSelector={"no-such": "node"}).obj(), ns)
        # Ours is reconciled: its status says which generation the operator saw.
        eventually(cluster, operator, lambda: observed(cluster, namespace, "stuck"), timeout=60, desc="ours reconciled")
        # The other one was applied at the same moment: 5 s after ours was reconciled, an operator
        # that served its namespace would have reconciled it too.
        time.sleep(5)
        assert observed(cluster, other, "stuck") is None, cluster.json("-n", other, "get", "mrs", "stuck")
