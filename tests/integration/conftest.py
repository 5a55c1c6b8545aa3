"""Fixtures every integration package may use: the run's one private kube-apiserver
(e2e/harness/apiserver.py run_wide, shared across the test run's workers by e2e/harness/shared.py) for
tests that need the Kubernetes API and nothing of a cluster beyond it."""

from __future__ import annotations

import pytest

from e2e.harness import apiserver
from e2e.harness.cluster import Cluster


@pytest.fixture(scope="session")
def kube() -> Cluster:
    """The run's private API server through the e2e tier's handle (kubectl, apply, wait_for): no
    controllers, scheduler or nodes. Each test works in namespaces of its own."""
    why = apiserver.missing()
    if why:
        pytest.fail(why, pytrace=False)
    return apiserver.run_wide().as_cluster()
