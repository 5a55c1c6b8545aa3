"""The autoscaler's integration tests reuse the simulator tests' real-Prometheus fixture."""

from tests.integration.sim.conftest import prometheus_server  # noqa: F401
