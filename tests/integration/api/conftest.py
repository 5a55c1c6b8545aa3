"""Fixtures of the API tests: our CRDs, other projects' CRDs and the Helm chart on the run's one
private kube-apiserver (``kube``, tests/integration/conftest.py). Each test works in namespaces of its
own; nothing here needs a node, the scheduler or a controller, which is why these tests are not in
the e2e tier."""

from __future__ import annotations

from e2e.harness.helm import helm  # noqa: F401 - a fixture
