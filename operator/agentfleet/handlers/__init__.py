"""kopf handlers of the operator's four loops: importing this package registers them.

Each handler only names what to reconcile (``enqueue``/``forget`` on its controller, see
agentfleet.reconcile) or keeps a cache up to date; the work happens in agentfleet.controllers.
"""

from agentfleet.handlers import agentfleet, autoscaler, modelreplicaset, vectorindex

__all__ = ["agentfleet", "autoscaler", "modelreplicaset", "vectorindex"]
