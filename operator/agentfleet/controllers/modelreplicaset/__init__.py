"""The ModelReplicaSet controller, by responsibility:

- caches.py      what kopf's indices keep of nodes, GPU pods and placements; Snapshot
- state.py       what the controller remembers of one object between passes
- controller.py  the Controller: work queue, per-object state, ledger, in-flight reader
- reconcile.py   one pass as named steps: observe, judge, decide, act, place, write
- judging.py     the judge step: each replica's health, and what cannot wait
- ledger.py      placements made by this process, so parallel plans never share GPUs
- inflight.py    requests each replica holds, from its /metrics
- status.py      the status this controller writes
- children.py    Services, the PodDisruptionBudget, the NetworkPolicy and the generated API key Secret
"""
