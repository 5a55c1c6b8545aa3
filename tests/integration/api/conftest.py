"""Fixtures of the API tests: our CRDs, other projects' CRDs and the Helm chart on the run's one
private kube-apiserver (``kube``, tests/integration/conftest.py). Each test works in namespaces of its
own; nothing here needs a node, the scheduler or a controller, which is why these tests are not in
the e2e tier."""

from __future__ import annotations

import pytest

from e2e.harness.helm import build as helm_build


@pytest.fixture(scope="session")
def helm() -> str:
    """The real helm's path (e2e/harness/helm.py)."""
    try:
        return helm_build()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
