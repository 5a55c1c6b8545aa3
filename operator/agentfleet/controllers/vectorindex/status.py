"""What a VectorIndex pass reports, composed without I/O from what it observed, planned and did: the
status fields, the conditions, the Events, and how the pass ends (``Report``). The write step sends
it (reconcile.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from agentfleet_contract.conditions import DEGRADED, PROGRESSING, READY, set_condition
from agentfleet_milvus import MilvusError, MilvusUnavailable, UnsupportedByServer

from agentfleet.controllers.vectorindex.deciding import operator_missing
from agentfleet.controllers.vectorindex.records import (
    BUSY_RESYNC_MAX_SECONDS,
    INGESTED,
    MILVUS_UNREACHABLE,
    Acted,
    Condition,
    Observed,
    Plan,
    Post,
    SecretRefused,
    Stop,
)

# How a pass ends: ``stop`` raises MilvusNotReady (backoff), ``busy`` asks for the next pass soon
# (records.next_busy_delay), ``idle`` leaves it to events and the resync.
Ending = Literal["stop", "busy", "idle"]


@dataclass
class Report:
    generation: int
    conditions: list[dict[str, Any]]
    status: dict[str, Any] = field(default_factory=dict)
    posts: list[Post] = field(default_factory=list)
    ending: Ending = "idle"
    stop: Stop | None = None

    def condition(self, c: Condition) -> None:
        self.conditions = set_condition(self.conditions, c[0], c[1], c[2], c[3], self.generation)

    def stopped(self, stop: Stop) -> Report:
        self.status["phase"] = stop.phase
        for c in stop.conditions:
            self.condition(c)
        self.posts.append(stop.post)
        self.ending, self.stop = "stop", stop
        return self


def failure_stop(e: MilvusError, endpoint: str | None) -> Stop:
    """A failed Milvus call as status and an Event: our words only (e.public, or a refused
    Secret's text), never what the remote end answered, so status does not tell a VectorIndex's
    author whether a port is open or what listens there."""
    if isinstance(e, MilvusUnavailable):
        said = str(e) if isinstance(e, SecretRefused) else MILVUS_UNREACHABLE
        return Stop(
            "Degraded",
            (
                (DEGRADED, True, "MilvusUnavailable", said),
                (READY, False, "MilvusUnavailable", f"cannot reach Milvus at {endpoint}: {said}"),
            ),
            ("Warning", "MilvusUnavailable", said),
        )
    if isinstance(e, UnsupportedByServer):
        # Refused before anything was created: the spec needs a newer Milvus.
        why = "MilvusVersionUnsupported"
        conds = ((DEGRADED, True, why, e.public), (READY, False, why, e.public))
        return Stop("Failed", conds, ("Warning", why, e.public), retry_after=BUSY_RESYNC_MAX_SECONDS)
    why = "MilvusRequestFailed"
    conds = ((DEGRADED, True, why, e.public), (READY, False, why, e.public))
    return Stop("Degraded", conds, ("Warning", why, e.public))


def compose(obs: Observed, plan: Plan, acted: Acted) -> Report:
    spec = obs.vi.spec
    r = Report(obs.generation, [dict(c) for c in obs.conditions_in])
    if acted.kind_missing:
        return r.stopped(operator_missing())
    if plan.milvus_condition is not None:
        r.condition(plan.milvus_condition)
    if plan.endpoint is None and plan.stop is None:
        r.status["phase"] = "Creating"
        for c in plan.waiting:
            r.condition(c)
        r.ending = "busy"
        return r
    if plan.endpoint is not None:
        r.status["endpoint"] = plan.endpoint
    if plan.stop is not None:
        return r.stopped(plan.stop)
    busy = False
    if acted.ensured is not None:
        done = acted.ensured
        if done.created:
            r.posts.append(
                ("Normal", "CollectionCreated", f"created collection {spec.collection} with {spec.shards} shard(s)")
            )
        if done.index_rebuilt:
            r.posts.append(("Normal", "IndexRebuilt", f"rebuilt the {spec.index.type} index over the existing rows"))
        if done.reloaded:
            r.posts.append(("Normal", "Reloaded", f"loaded with {spec.in_memory_replicas} in-memory replica(s)"))
        r.posts += [("Normal", "MilvusNote", note) for note in done.notes]
        r.status.update(done.state.status())
        if done.replicas_refused is not None:
            # The collection keeps serving with the replicas it had; the spec's number waits for capacity.
            r.condition((DEGRADED, True, "ReplicasRefused", done.replicas_refused))
            r.posts.append(("Warning", "ReplicasRefused", done.replicas_refused))
            busy = True
        else:
            r.condition((DEGRADED, False, "AsExpected", ""))
        busy = busy or done.state.load_state != "Loaded"
    if acted.conflict is not None:
        # Nothing was changed in Milvus: the spec asks for what the collection cannot become.
        r.status["phase"] = "Failed"
        r.condition((DEGRADED, True, "ImmutableFieldConflict", acted.conflict))
        r.condition((READY, False, "ImmutableFieldConflict", acted.conflict))
        r.posts.append(("Warning", "ImmutableFieldConflict", acted.conflict))
        return r
    busy = ingestion(r, obs, plan, acted) or busy
    if acted.rows is not None:
        r.status["rowCount"] = acted.rows.rows
    if acted.failure is not None:
        return r.stopped(acted.failure)
    summarise(r, spec.collection, busy)
    r.ending = "busy" if busy else "idle"
    return r


def ingestion(r: Report, obs: Observed, plan: Plan, acted: Acted) -> bool:
    """The ingestion's condition, Events and status; whether it is under way."""
    ing = plan.ingestion
    if ing is None:
        if acted.ingested:
            r.condition((INGESTED, True, "NoSource", "the collection is filled outside agentfleet"))
        return False
    if acted.job_created:
        workers = obs.vi.spec.ingestion.parallelism
        started = f"Job {ing.job_name} ingests source revision {ing.revision} with {workers} worker(s)"
        r.posts.append(("Normal", "IngestionStarted", started))
    if not acted.ingested:
        return False
    if ing.post is not None:
        r.posts.append(ing.post)
    if ing.kept:
        kept = (
            f"{ing.kept} document(s) failed in this ingestion; rows of earlier ingestions are kept so those "
            "documents stay searchable"
        )
        r.posts.append(("Warning", "StaleChunksKept", kept))
    if acted.pruned:
        pruned = f"deleted the rows of earlier ingestions (any metadata.revision other than {ing.tag})"
        r.posts.append(("Normal", "StaleChunksPruned", pruned))
    r.condition(ing.condition)
    r.status["ingestion"] = dict(ing.status)
    return ing.busy


def summarise(r: Report, collection: str, busy: bool) -> None:
    """Ready, Progressing and the phase, from the conditions and status so far. Searchable is what
    agents need: an older revision keeps serving while a new one ingests."""
    by_type = {c["type"]: c for c in r.conditions}
    ingested = by_type.get(INGESTED, {})
    loaded = r.status.get("loadState") == "Loaded"
    failed = ingested.get("reason") == "IngestionFailed"
    has_rows = (r.status.get("rowCount") or 0) > 0
    ready = loaded and not failed and (ingested.get("status") == "True" or has_rows)
    if ready:
        rows = r.status.get("rowCount", 0)
        r.condition((READY, True, "Searchable", f"collection {collection} is loaded with {rows} rows"))
    elif failed:
        r.condition((READY, False, "IngestionFailed", ingested.get("message", "")))
    elif not loaded:
        state = r.status.get("loadState") or "not loaded"
        r.condition((READY, False, "Loading", f"collection {collection} is {state}"))
    else:
        r.condition((READY, False, ingested.get("reason", "Ingesting"), ingested.get("message", "")))
    ingesting = ingested.get("reason") == "Ingesting"
    r.condition((PROGRESSING, busy, "Ingesting" if ingesting else ("Loading" if not loaded else "Idle"), ""))
    r.status["phase"] = "Ready" if ready else ("Failed" if failed else ("Ingesting" if ingesting else "Creating"))
