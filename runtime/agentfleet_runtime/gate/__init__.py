"""The evaluation gate's Job: ``python -m agentfleet_runtime gate`` (docs/evaluation-gate.md).

It runs the gate's sample of a task set against the serving version and the candidate through the
store layer (each version's own task stream, under the reserved tenant ``agentfleet-gate``), scores
each answer with agentfleet_eval (the scorer of ``agentfleet eval``) and writes one result per
(version, task) into the gate's results ConfigMap as soon as it is scored. A restarted Job reads the
ConfigMap and runs only what is missing; the operator reads the same ConfigMap and decides.
"""
