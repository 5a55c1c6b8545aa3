"""The reconcilers of the operator's four loops (ModelReplicaSet, VectorIndex, AgentFleet,
autoscaler), each a Controller (agentfleet.reconcile) whose reconcile is a short list of named
steps. Their kopf handlers live in agentfleet.handlers and only enqueue."""
