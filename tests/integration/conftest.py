"""Fixtures every integration package may use: the run's one private kube-apiserver
(e2e/harness/apiserver.py run_wide, shared across the test run's workers by e2e/harness/shared.py) for
tests that need the Kubernetes API and nothing of a cluster beyond it, our CRDs on it, a namespace
per test, simulated GPU nodes the tests register themselves, and the run's one Redis and Milvus Lite.
The operator fixture is the e2e tier's (``operator = e2e.harness.operator.operator``): it serves only
its module's namespaces."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from e2e.harness import apiserver, milvus, redis
from e2e.harness.cluster import Cluster, namespace_prefix
from e2e.harness.operator import GpuPool, install_crds
from e2e.harness.redis import RedisServer


@pytest.fixture(scope="session")
def kube() -> Cluster:
    """The run's private API server through the e2e tier's handle (kubectl, apply, wait_for): no
    controllers, scheduler or nodes. Each test works in namespaces of its own."""
    why = apiserver.missing()
    if why:
        pytest.fail(why, pytrace=False)
    return apiserver.run_wide().as_cluster()


@pytest.fixture(scope="session")
def redis_server() -> RedisServer:
    """The run's one Redis (e2e/harness/redis.py run_wide); each test isolates itself with its own
    fleet name (and namespace), which prefix its keys. A test that restarts, fills or reconfigures
    Redis starts its own (the runtime's ``own_redis``)."""
    return redis.run_wide()


@pytest.fixture(scope="session")
def milvus_uri() -> str:
    """The run's one Milvus Lite gRPC server (e2e/harness/milvus.py run_wide): its URI. Each test
    works in collections (or a database) of its own names."""
    return milvus.run_wide()


@pytest.fixture(scope="module")
def crds(kube: Cluster) -> Cluster:
    """Our CRDs applied (idempotent: every module applies the same ones)."""
    install_crds(kube)
    return kube


@pytest.fixture
def namespace(kube: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    # Named after the module, as in the e2e tier: the module's operator serves only these.
    with kube.fresh_namespace(f"{namespace_prefix(request.module.__name__)}{uuid.uuid4().hex[:6]}") as name:
        yield name


@pytest.fixture
def gpu_pool(kube: Cluster, namespace: str) -> Iterator[GpuPool]:
    """Simulated GPU nodes of one test, registered Ready by the test itself (no kwok here)."""
    pool = GpuPool(kube, namespace)
    yield pool
    pool.delete_all()
