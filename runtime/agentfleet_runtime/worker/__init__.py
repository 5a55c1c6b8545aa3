"""The worker: leases tasks from the fleet's Redis stream and runs their agent loops (lifecycle.py
explains the parts)."""

from agentfleet_runtime.worker.lifecycle import Worker, consumer_name

__all__ = ["Worker", "consumer_name"]
