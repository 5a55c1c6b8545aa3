"""agentfleet: a Kubernetes operator for production LLM agent applications."""

__version__ = "0.1.0"
