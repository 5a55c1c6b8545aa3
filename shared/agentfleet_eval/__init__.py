"""The scorer of `agentfleet eval` and of the evaluation gate: task sets, samples, claims, scores and
the Outcome a task's API views make. Pure: no I/O beyond ``taskset.load_taskset`` reading a file.

It lives beside the contract, not in agentfleet_client, because the runtime image scores too: the
gate's evaluation Job (``python -m agentfleet_runtime gate``) runs in that image, which carries no
client. agentfleet_client.evaluation re-exports each module under its old name.
"""
