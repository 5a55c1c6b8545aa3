"""agentfleet's agent runtime: durable agent loops on Redis (worker, task API, ingestion)."""

__version__ = "0.1.0"
