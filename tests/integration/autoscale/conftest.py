"""The autoscaler's integration tests use the harness's real-Prometheus fixture."""

from e2e.harness.prometheus import prometheus_server  # noqa: F401
