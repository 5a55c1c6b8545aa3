"""The operator's controllers: importing this package registers their kopf handlers.

Each controller keeps its decisions in a pure module (rollout, placement, capacity, render) and
only does the I/O here.
"""

from agentfleet.controllers import agentfleet, autoscaler, modelreplicaset, vectorindex

__all__ = ["agentfleet", "autoscaler", "modelreplicaset", "vectorindex"]
