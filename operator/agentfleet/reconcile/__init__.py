"""The one reconciler framework every controller (ModelReplicaSet, VectorIndex, AgentFleet,
autoscaler) is built on.

- ``workqueue``: level-triggered, per-key serialised, coalesced, retried, resynced reconciles;
- ``controller``: the Controller base class, which runs a kind's reconciles from its queue in
  worker threads and holds its per-object state in typed objects;
- ``events``: the one Event recorder, with the one de-duplication rule;
- ``status``: the one status writer (server-side apply per field manager, or a merge patch of
  changed fields), which skips writes that change nothing;
- ``errors``: the one formatter of validation errors for conditions and Events;
- ``shape``: the four steps of a reconcile (observe, decide, act, write) and refuse-and-report.

kopf handlers (agentfleet.handlers) only call ``Controller.enqueue``/``forget``.
"""
