"""The ModelReplicaSet controller, by responsibility:

- caches.py      what kopf's indices keep of nodes, GPU pods and placements; Snapshot
- state.py       what the controller remembers of one object between passes
- controller.py  the Controller: work queue, per-object state, ledger, in-flight reader
- services.py    the Protocols of what a pass uses of its controller and clients
- records.py     the typed records the steps hand on (Observed, ReplicaRecord, Acted)
- reconcile.py   one pass in the framework's four steps: observe, decide, act (with placing), write
- deciding.py    the decide step, pure: cache fill, judgment, rollout step (a typed Plan)
- judging.py     part of decide: each replica's health, and what cannot wait
- ledger.py      placements made by this process, so parallel plans never share GPUs
- inflight.py    requests each replica holds, from its /metrics
- status.py      the status this controller writes
- children.py    Services, the PodDisruptionBudget, the NetworkPolicy and the generated API key Secret
"""
