"""The autoscale benchmark's parts (e2e/bench/autoscale_bench.py is its command line):

- ``workload``: the SLOs, the fleet's shape and the day of agent tasks;
- ``fleet``: the fleet simulator (replicas, router, agents) on the simulated clock;
- ``policies``: agentfleet's policy and the baselines (fixed, HPA, KEDA, the oracles);
- ``run``: one policy against one workload;
- ``report`` and ``plots``: the table, the frontier and the goals, and the figures.
"""
