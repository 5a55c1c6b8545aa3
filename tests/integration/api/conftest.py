"""Fixtures of the API tests: our CRDs, other projects' CRDs and the Helm chart on the run's one
private kube-apiserver (``kube``, tests/integration/conftest.py). Each test works in namespaces of its
own; nothing here needs a node, the scheduler or a controller, which is why these tests are not in
the e2e tier."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from e2e.harness.cluster import Cluster
from e2e.harness.helm import build as helm_build


@pytest.fixture
def namespace(kube: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    slug = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_").removesuffix("_it").replace("_", "-")
    with kube.fresh_namespace(f"it-{slug}-{uuid.uuid4().hex[:6]}") as name:
        yield name


@pytest.fixture(scope="session")
def helm() -> str:
    """The real helm's path (e2e/harness/helm.py)."""
    try:
        return helm_build()
    except RuntimeError as e:
        pytest.fail(str(e), pytrace=False)
