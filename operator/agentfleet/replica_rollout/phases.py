"""A replica's phases as status.placements[].phase names them, and the sets decisions use."""

from __future__ import annotations

PENDING, LOADING, READY_PHASE, DRAINING, FAILED, TERMINATING = (
    "Pending",
    "Loading",
    "Ready",
    "Draining",
    "Failed",
    "Terminating",
)
# Replicas that occupy a slot of the desired count.
ACTIVE = frozenset({PENDING, LOADING, READY_PHASE, FAILED})
# Record phases of a replica whose pods have all existed at once: a member missing now was lost,
# not merely not created yet.
STARTED = frozenset({LOADING, READY_PHASE, DRAINING, FAILED})
