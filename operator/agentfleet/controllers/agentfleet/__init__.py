"""The AgentFleet controller, by responsibility:

- controller.py  the Controller: work queue, what each fleet refers to (so a change there wakes it)
- services.py    the Protocols of what a pass uses (the API, Events, the Redis probe)
- records.py     the typed records the steps hand on (Observed, Plan, Acted) and the shared names
- reconcile.py   one pass in the framework's four steps: observe, decide, act, write
- deciding.py    the decide step, pure: references resolved, problems, the runtime rendered
- gating.py      the evaluation gate's step of decide, pure: which version serves, the candidate,
                 the Job, what a finished gate deletes (docs/evaluation-gate.md)
- status.py      the status this controller writes and the Events that go with it (pure)
- probe.py       the fleet's Redis: client, probe (PING, task figures, who the server is), a bound on its time
- sharing.py     fleets sharing trust over one external Redis, decided purely (RedisShared)

Children are rendered by agentfleet.render.agentfleet (pure) and applied with server-side apply
under the operator's field manager; status is applied under the same manager, only the fields and
condition types this controller owns (the autoscaler owns desiredWorkers while
spec.workers.autoscaling, and its own condition types, under another).
"""

from agentfleet.controllers.agentfleet.controller import AgentFleetController, AgentFleetState, references
from agentfleet.controllers.agentfleet.probe import probe_fleet_redis, probe_redis, redis_client
from agentfleet.controllers.agentfleet.reconcile import AgentFleetPass, SecretRaced
from agentfleet.controllers.agentfleet.records import (
    BACKOFF_MAX,
    BACKOFF_MIN,
    BUSY_RESYNC_SECONDS,
    INDEX_READY,
    KIND,
    MODEL_READY,
    OWN_CONDITIONS,
    OWN_FIELDS,
    PROBE_FAILED,
    REDIS_READY,
    REDIS_SHARED,
    REDIS_TIMEOUT_SECONDS,
    RUNTIME_READY,
    STATS_RESYNC_SECONDS,
)

__all__ = [
    "BACKOFF_MAX",
    "BACKOFF_MIN",
    "BUSY_RESYNC_SECONDS",
    "INDEX_READY",
    "KIND",
    "MODEL_READY",
    "OWN_CONDITIONS",
    "OWN_FIELDS",
    "PROBE_FAILED",
    "REDIS_READY",
    "REDIS_SHARED",
    "REDIS_TIMEOUT_SECONDS",
    "RUNTIME_READY",
    "STATS_RESYNC_SECONDS",
    "AgentFleetController",
    "AgentFleetPass",
    "AgentFleetState",
    "SecretRaced",
    "probe_fleet_redis",
    "probe_redis",
    "redis_client",
    "references",
]
