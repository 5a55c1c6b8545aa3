"""AgentFleet controller: the agent runtime, its config and Redis, wired to the referenced
ModelReplicaSet(s) and VectorIndex.

Level-based, like the VectorIndex controller: one pass reads the AgentFleet and what it refers to,
renders the children (agentfleet.render.agentfleet, pure), applies them with server-side apply
(ownerReferences, so deleting the fleet removes them all; no finalizer), and writes the status
fields and condition types it owns with a server-side apply of the status subresource under its
own field manager. The autoscaler owns desiredWorkers (while spec.workers.autoscaling) and its
own condition types under another manager; the two never overwrite each other. spec is never
written: defaults live in the schema.

Passes come from events on AgentFleets, on their Deployments and StatefulSets, on the
ModelReplicaSets and VectorIndexes they refer to (agentfleet.handlers.agentfleet), and from a
periodic resync (which also refreshes the task statistics read from the fleet's Redis with a short
timeout).

A pass: validate -> references (models, index, system prompt, Secrets, Redis) -> problems the
schema cannot see -> the runtime's children (render, then server-side apply) -> Redis probe and
task statistics -> summary conditions -> status (only this controller's fields).
"""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentfleet_contract.agentfleet import AgentFleet
from agentfleet_contract.common import API_VERSION
from agentfleet_contract.conditions import READY, get_condition, set_condition
from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec
from agentfleet_contract.redis_sentinel import parse_sentinel_url, sentinel_url
from agentfleet_contract.runtime_config import (
    DEFAULT_SYSTEM_PROMPT,
    DEFAULT_TENANT,
    ModelTarget,
    runtime_config,
    token_line,
)
from kubernetes.dynamic.exceptions import ConflictError, NotFoundError
from pydantic import ValidationError

from agentfleet.controllers.settings import CONFIG
from agentfleet.kube import FIELD_MANAGER, Kube
from agentfleet.reconcile.controller import Controller, Key
from agentfleet.reconcile.errors import describe_validation_error
from agentfleet.reconcile.events import EventRecorder, post_with_kube
from agentfleet.reconcile.status import StatusWriter, own_part
from agentfleet.render import agentfleet as render
from agentfleet.render.budgets import SpecProblem, budget_problems
from agentfleet.render.common import secret_problem
from agentfleet.render.overlay import OverlayError

log = logging.getLogger("agentfleet.agentfleet")

KIND = "AgentFleet"
MODEL_READY, INDEX_READY, REDIS_READY, RUNTIME_READY = "ModelReady", "IndexReady", "RedisReady", "RuntimeReady"
OWN_CONDITIONS = (READY, MODEL_READY, INDEX_READY, REDIS_READY, RUNTIME_READY)
# Status fields this controller owns (desiredWorkers only while the autoscaler does not).
OWN_FIELDS = (
    "observedGeneration",
    "workers",
    "readyWorkers",
    "selector",
    "taskApiEndpoint",
    "queueDepth",
    "inFlightTasks",
    "awaitingApproval",
    "tasksPerHour",
    "taskP95Seconds",
    "costPerTask",
)
BACKOFF_MIN, BACKOFF_MAX = 2.0, 120.0
BUSY_RESYNC_SECONDS = 5.0  # while something is starting
STATS_RESYNC_SECONDS = 30.0  # a healthy fleet's statistics refresh
REDIS_TIMEOUT_SECONDS = 1.0  # reading the fleet's Redis must never hold up a pass for long

# Redis probes run here so a pass can stop waiting for one; a stuck probe holds a thread, not a pass.
_PROBES = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="af-redis-probe")


def _b64(data: Mapping[str, str] | None, key: str) -> str | None:
    raw = (data or {}).get(key)
    return base64.b64decode(raw).decode() if raw else None


def _ready(obj: Mapping[str, Any] | None) -> tuple[bool, str]:
    c = get_condition(list((obj or {}).get("status", {}).get("conditions") or []), READY)
    if c is None:
        return False, "no Ready condition yet"
    return c.get("status") == "True", f"{c.get('reason', '')}: {c.get('message', '')}".strip(": ")


# What status and Events say when the Redis probe fails, whatever the cause. Never the remote end's
# answer or which step failed: anyone who may create an AgentFleet would otherwise learn from
# status whether a port is open and what it says (the operator as a port scanner). The cause goes
# to the operator's log, which only its administrators read.
PROBE_FAILED = (
    "no Redis answered the fleet's PING with its password "
    "(connection, protocol or authentication failed; the operator's log has the cause)"
)


def redis_client(
    url: str, password: str | None, timeout: float = REDIS_TIMEOUT_SECONDS, connect_timeout: float | None = None
) -> Any:
    """A synchronous redis-py client of a fleet's Redis (``redis://`` or ``redis+sentinel://``)."""
    import redis
    import redis.sentinel

    connect = timeout if connect_timeout is None else connect_timeout
    target = parse_sentinel_url(url)
    if target is not None:
        addresses = list(target.addresses)
        sentinel = redis.sentinel.Sentinel(addresses, socket_timeout=connect, socket_connect_timeout=connect)
        opts = {"password": password or None, "db": target.db, "decode_responses": True}
        return sentinel.master_for(target.master, socket_timeout=timeout, socket_connect_timeout=connect, **opts)
    opts = {"socket_timeout": timeout, "socket_connect_timeout": connect, "decode_responses": True}
    return redis.Redis.from_url(url, password=password or None, **opts)


def probe_redis(
    url: str, password: str | None, fleet: str, timeout: float = REDIS_TIMEOUT_SECONDS, namespace: str = ""
) -> tuple[bool, str, Any]:
    """(reachable, error, FleetStats or None): PING with the password, then the fleet's figures.
    ``error`` is for the operator's log only (it may hold what the remote end answered)."""
    import redis
    from agentfleet_contract.fleet_stats import read_fleet_stats

    r = redis_client(url, password, timeout)
    try:
        r.ping()
    except redis.RedisError as e:
        return False, str(e) or type(e).__name__, None
    else:
        try:
            return True, "", read_fleet_stats(r, fleet, namespace=namespace)
        except redis.RedisError as e:
            log.debug("%s: stats unavailable: %s", fleet, e)
            return True, "", None
    finally:
        r.close()


class AgentFleetPass:
    """One reconcile of one AgentFleet; collects status and Events, writes them once at the end."""

    def __init__(self, kube: Kube, events: EventRecorder, obj: dict[str, Any], probe: Any = probe_redis) -> None:
        self.kube = kube
        self.events = events
        self.obj = obj
        self.probe = probe
        meta = obj["metadata"]
        self.ns, self.name, self.generation = meta["namespace"], meta["name"], int(meta.get("generation") or 0)
        self.old = obj.get("status") or {}
        self.conditions: list[dict[str, Any]] = [
            c for c in self.old.get("conditions") or [] if c.get("type") in OWN_CONDITIONS
        ]
        self.status: dict[str, Any] = {}
        self.problems: list[SpecProblem] = []  # block rendering: the fleet cannot run as specified
        self.waiting: list[str] = []  # referenced models that exist but are not Ready
        self.busy = False

    # --- helpers ---

    def condition(self, type_: str, ok: bool, reason: str, message: str = "") -> None:
        self.conditions = set_condition(self.conditions, type_, ok, reason, message[:4096], self.generation)

    def event(self, type_: str, reason: str, message: str) -> None:
        # The same problem on every pass is one Event (and log line), not a flood.
        self.events.event(self.obj, type_, reason, message)

    def problem(self, reason: str, message: str) -> None:
        self.problems.append(SpecProblem(reason, message))
        self.event("Warning", reason, message)

    def get(self, api_version: str, kind: str, name: str) -> dict[str, Any] | None:
        return self.kube.get(api_version, kind, name, self.ns)

    def secret_value(self, name: str, key: str) -> str | None:
        s = self.get("v1", "Secret", name)
        return None if s is None else _b64(s.get("data"), key)

    def consented_secret(self, field: str, name: str, key: str) -> str | None:
        """The value of a Secret a spec names, if it may be used (render.common.secret_problem);
        otherwise a problem naming the field and the fix, and None."""
        s = self.get("v1", "Secret", name)
        why = secret_problem(s, field, name, key, self.ns)
        if why is not None:
            self.problem(*why)
            return None
        return _b64((s or {}).get("data"), key)

    def ensure_generated_secret(self, af: AgentFleet, name: str, key: str, component: str) -> str | None:
        """A Secret created once with a random value and never regenerated; returns the value."""
        value = self.secret_value(name, key)
        if value is not None:
            return value
        body = render.render_secret(af, name, key, secrets.token_urlsafe(32), component)
        try:
            self.kube.create(body)
            self.event("Normal", "SecretGenerated", f"generated Secret {name}")
        except ConflictError:
            pass  # another pass made it first: read theirs
        return self.secret_value(name, key)

    # --- the pass ---

    def run(self) -> float | None:
        try:
            af = AgentFleet.model_validate(self.obj)
        except ValidationError as e:
            msg = describe_validation_error(e, prefix="spec.", skip=1)
            self.condition(READY, False, "InvalidSpec", msg)
            self.event("Warning", "InvalidSpec", msg)
            self.write_status()
            return None
        spec = af.spec
        self.status["selector"] = render.selector_string(self.name)
        self.status["taskApiEndpoint"] = render.task_api_endpoint(self.name, self.ns)

        primary, primary_spec = self.model(spec.model_ref.name, "spec.modelRef")
        primary = self.adapter(primary, primary_spec, spec.model_adapter)
        routine = routine_spec = None
        if spec.routine_model_ref is not None:
            routine, routine_spec = self.model(spec.routine_model_ref.name, "spec.routineModelRef")
        self.model_keys(spec, primary_spec, routine_spec)
        self.model_condition(spec)
        vector_index, milvus_uri, milvus_env = self.index(af)
        prompt = self.system_prompt(af)
        if prompt is not None:
            context = primary_spec.engine.max_model_len if primary_spec is not None else None
            for p in budget_problems(spec, prompt, context):
                self.problem(p.reason, p.message)

        self.secret_refs(af)
        redis_url, password = self.redis(af)
        if not self.problems and primary is not None and redis_url is not None:
            keys = [s.engine.api_key_secret_ref if s is not None else None for s in (primary_spec, routine_spec)]
            self.runtime(af, primary, routine, redis_url, prompt, vector_index, milvus_uri, milvus_env, *keys)
        else:
            self.condition(
                RUNTIME_READY,
                False,
                "NotRendered",
                "the runtime is not (re)rendered until the problems in Ready are fixed",
            )
        if redis_url is not None:
            self.redis_probe(af, redis_url, password)
        self.summarise()
        self.write_status()
        if self.problems or self.busy or not self.is_true(READY):
            return BUSY_RESYNC_SECONDS * (3 if self.problems else 1)
        return STATS_RESYNC_SECONDS

    def is_true(self, type_: str) -> bool:
        c = get_condition(self.conditions, type_)
        return c is not None and c["status"] == "True"

    # --- references ---

    def model(self, name: str, field: str) -> tuple[ModelTarget | None, ModelReplicaSetSpec | None]:
        mrs = self.get(API_VERSION, "ModelReplicaSet", name)
        if mrs is None:
            self.problem(
                "ModelNotFound",
                (
                    f"ModelReplicaSet {name} named by {field}.name does not exist in namespace {self.ns}: create it "
                    f"or fix {field}.name"
                ),
            )
            return None, None
        try:
            mspec = ModelReplicaSetSpec.model_validate(mrs.get("spec") or {})
        except ValidationError as e:
            self.problem(
                "ModelNotFound",
                (
                    f"ModelReplicaSet {name} named by {field}.name has an invalid spec: "
                    f"{describe_validation_error(e, prefix='spec.')}"
                ),
            )
            return None, None
        served = (mrs.get("status") or {}).get("servedModelName") or mspec.model.served_name or mspec.model.name
        ok, why = _ready(mrs)
        if not ok:
            self.waiting.append(f"ModelReplicaSet {name} ({field}) is not Ready: {why}")
        target = ModelTarget(
            name=name,
            served_name=served,
            port=mspec.engine.port,
            routing=mspec.routing.wire(),
            max_model_len=mspec.engine.max_model_len,
        )
        return target, mspec

    def adapter(
        self, target: ModelTarget | None, mspec: ModelReplicaSetSpec | None, name: str | None
    ) -> ModelTarget | None:
        """spec.modelAdapter: the agents call that LoRA adapter of the set, which must list it."""
        if target is None or mspec is None or name is None:
            return target
        if name not in {a.name for a in mspec.adapters}:
            listed = ", ".join(a.name for a in mspec.adapters) or "none"
            self.problem(
                "AdapterNotFound",
                f"spec.modelAdapter {name} is not among spec.adapters of ModelReplicaSet {target.name} ({listed}): "
                "add it there or fix spec.modelAdapter",
            )
            return None
        return dataclasses.replace(
            target, served_name=name, adapter=True, adapters=tuple(a.name for a in mspec.adapters)
        )

    def model_keys(self, spec: Any, primary: ModelReplicaSetSpec | None, routine: ModelReplicaSetSpec | None) -> None:
        """The workers get each tier's API key from its own ModelReplicaSet's Secret and send each
        tier its own. A Secret a set names (spec.engine.apiKeySecretRef) needs the consent label
        here too, as every Secret a fleet's pods get: naming a set must not mount any Secret of the
        namespace into the workers (the operator's generated <set>-vllm-api-key carries it)."""
        tiers = [("spec.modelRef", spec.model_ref.name, primary)]
        if spec.routine_model_ref is not None:
            tiers.append(("spec.routineModelRef", spec.routine_model_ref.name, routine))
        for field, name, mspec in tiers:
            ref = mspec.engine.api_key_secret_ref if mspec is not None else None
            if ref is not None:
                where = f"ModelReplicaSet {name} ({field}) spec.engine.apiKeySecretRef"
                self.consented_secret(where, ref.name, ref.key)

    def model_condition(self, spec: Any) -> None:
        missing = [p for p in self.problems if p.reason == "ModelNotFound"]
        if missing:
            self.condition(MODEL_READY, False, "ModelNotFound", missing[0].message)
        elif self.waiting:
            self.condition(MODEL_READY, False, "ModelNotReady", "; ".join(self.waiting))
        else:
            names = ", ".join(
                n for n in (spec.model_ref.name, spec.routine_model_ref.name if spec.routine_model_ref else None) if n
            )
            self.condition(MODEL_READY, True, "ModelReady", f"ModelReplicaSet {names} Ready")

    def index(self, af: AgentFleet) -> tuple[dict[str, Any] | None, str | None, list[dict[str, Any]]]:
        ref = af.spec.vector_index_ref
        if ref is None:
            return None, None, []
        vi = self.get(API_VERSION, "VectorIndex", ref.name)
        if vi is None:
            msg = (
                f"VectorIndex {ref.name} named by spec.vectorIndexRef.name does not exist in namespace {self.ns}: "
                "create it or fix spec.vectorIndexRef.name"
            )
            self.problem("IndexNotFound", msg)
            self.condition(INDEX_READY, False, "IndexNotFound", msg)
            return None, None, []
        ok, why = _ready(vi)
        if ok:
            self.condition(INDEX_READY, True, "IndexReady", f"VectorIndex {ref.name} is searchable")
        else:
            self.condition(INDEX_READY, False, "IndexNotReady", f"VectorIndex {ref.name} is not Ready: {why}")
        vspec = vi.get("spec") or {}
        uri = (vi.get("status") or {}).get("endpoint") or (vspec.get("milvus") or {}).get("uri")
        env: list[dict[str, Any]] = []
        creds = (vspec.get("milvus") or {}).get("credentials")
        # The workers get these Secrets too: the same consent as the fleet's own.
        if creds:
            for k in (creds.get("usernameKey", "username"), creds.get("passwordKey", "password")):
                self.consented_secret(f"VectorIndex {ref.name} spec.milvus.credentials", creds["secretName"], k)
        if (emb_ref := (vspec.get("embedding") or {}).get("apiKeySecretRef")) is not None:
            field = f"VectorIndex {ref.name} spec.embedding.apiKeySecretRef"
            self.consented_secret(field, emb_ref["name"], emb_ref["key"])
        if creds:
            env.append(
                {
                    "name": "AGENTFLEET_MILVUS_USER",
                    "valueFrom": {
                        "secretKeyRef": {"name": creds["secretName"], "key": creds.get("usernameKey", "username")}
                    },
                }
            )
            env.append(
                {
                    "name": "AGENTFLEET_MILVUS_PASSWORD",
                    "valueFrom": {
                        "secretKeyRef": {"name": creds["secretName"], "key": creds.get("passwordKey", "password")}
                    },
                }
            )
        key_ref = (vspec.get("embedding") or {}).get("apiKeySecretRef")
        if key_ref:
            env.append(
                {
                    "name": "AGENTFLEET_EMBEDDING_API_KEY",
                    "valueFrom": {"secretKeyRef": {"name": key_ref["name"], "key": key_ref["key"]}},
                }
            )
        return vspec, uri, env

    def system_prompt(self, af: AgentFleet) -> str | None:
        sp = af.spec.system_prompt
        if sp is None:
            return DEFAULT_SYSTEM_PROMPT
        if sp.inline is not None:
            return sp.inline
        assert sp.config_map_ref is not None
        cm = self.get("v1", "ConfigMap", sp.config_map_ref.name)
        text = None if cm is None else (cm.get("data") or {}).get(sp.config_map_ref.key)
        if text is None:
            self.problem(
                "SystemPromptNotFound",
                (
                    f"spec.systemPrompt.configMapRef: ConfigMap {sp.config_map_ref.name} has no key "
                    f"{sp.config_map_ref.key} in namespace {self.ns}: create it or fix the reference"
                ),
            )
        return text

    def secret_refs(self, af: AgentFleet) -> None:
        """Secrets the pods mount: a missing one would leave them waiting in ContainerCreating, and
        one without the consent label is not used at all."""
        refs = []
        if af.spec.api.auth_secret_ref is not None:
            refs.append(("spec.api.authSecretRef", af.spec.api.auth_secret_ref))
        for i, t in enumerate(af.spec.tools):
            if (ref := t.headers_ref()) is not None:
                kind = "http" if t.http is not None else "mcp"
                refs.append((f"spec.tools[{i}].{kind}.headersSecretRef ({t.name})", ref))
        if af.spec.tracing is not None and af.spec.tracing.headers_secret_ref is not None:
            refs.append(("spec.tracing.headersSecretRef", af.spec.tracing.headers_secret_ref))
        for field, ref in refs:
            self.consented_secret(field, ref.name, ref.key)

    # --- Redis ---

    def redis(self, af: AgentFleet) -> tuple[str | None, str | None]:
        """(URL, password) of the fleet's Redis; applies the managed one."""
        r = af.spec.redis
        if r.deploy is not None:
            password = self.ensure_generated_secret(
                af, render.redis_secret_name(self.name), render.REDIS_PASSWORD_KEY, "redis"
            )
            for o in render.render_redis(af, CONFIG.peers()):
                self.kube.apply(o)
            ok, why = render.statefulset_ready(self.get("apps/v1", "StatefulSet", render.redis_name(self.name)))
            if ok:
                self.condition(REDIS_READY, True, "RedisReady", f"StatefulSet {render.redis_name(self.name)} {why}")
            else:
                self.busy = True
                self.condition(
                    REDIS_READY, False, "RedisStarting", f"StatefulSet {render.redis_name(self.name)}: {why}"
                )
            return render.managed_redis_url(self.name, self.ns), password
        url = r.url if r.sentinel is None else sentinel_url(r.sentinel.addresses, r.sentinel.master_name)
        assert url is not None
        password = None
        if r.password_secret_ref is not None:
            ref = r.password_secret_ref
            password = self.consented_secret("spec.redis.passwordSecretRef", ref.name, ref.key)
            if password is None:
                self.condition(REDIS_READY, False, self.problems[-1].reason, self.problems[-1].message)
                return None, None
        return url, password

    def redis_probe(self, af: AgentFleet, url: str, password: str | None) -> None:
        # A hard bound on top of the socket timeouts: a name lookup (a managed Redis's Service seen
        # from outside the cluster, a resolver that does not answer) is not covered by them.
        # The fleet's keys hold its namespace (af:<namespace>/<fleet>:): the figures are read there.
        future = _PROBES.submit(self.probe, url, password, self.name, REDIS_TIMEOUT_SECONDS, self.ns)
        try:
            ok, error, stats = future.result(timeout=REDIS_TIMEOUT_SECONDS * 3)
        except concurrent.futures.TimeoutError:
            ok, error, stats = False, f"no answer within {REDIS_TIMEOUT_SECONDS * 3:g}s", None
        except Exception as e:  # noqa: BLE001 - statistics are best effort; a pass must finish
            ok, error, stats = False, f"{type(e).__name__}: {e}", None
        if af.spec.redis.deploy is None:
            if ok:
                self.condition(REDIS_READY, True, "RedisReady", f"{url} answers")
            else:
                log.info("%s/%s: Redis probe of %s failed: %.300s", self.ns, self.name, url, error)
                self.condition(REDIS_READY, False, "RedisUnreachable", f"cannot reach Redis at {url}: {PROBE_FAILED}")
                self.event("Warning", "RedisUnreachable", f"cannot reach Redis at {url}: {PROBE_FAILED}")
        if stats is not None:
            self.status["queueDepth"] = stats.queue_depth
            self.status["inFlightTasks"] = stats.in_flight
            self.status["awaitingApproval"] = stats.awaiting_approval
            self.status["tasksPerHour"] = stats.tasks_per_hour
            if stats.p95_seconds is not None:
                self.status["taskP95Seconds"] = stats.p95_seconds
            if stats.mean_cost is not None:
                self.status["costPerTask"] = render.format_cost(stats.mean_cost)

    # --- the runtime ---

    def runtime(
        self,
        af: AgentFleet,
        primary: ModelTarget,
        routine: ModelTarget | None,
        redis_url: str,
        prompt: str | None,
        vector_index: dict[str, Any] | None,
        milvus_uri: str | None,
        milvus_env: list[dict[str, Any]],
        model_key_secret_ref: Any | None = None,
        routine_key_secret_ref: Any | None = None,
    ) -> None:
        spec = af.spec
        token_hashes = None
        if spec.api.auth_secret_ref is None:
            # The Secret keeps the token for its users; the task API gets only its hash.
            token = self.ensure_generated_secret(af, render.api_token_secret_name(self.name), render.TOKEN_KEY, "api")
            token_hashes = token_line(DEFAULT_TENANT, token) if token else None
        doc = runtime_config(
            af,
            primary=primary,
            routine=routine,
            redis_url=redis_url,
            system_prompt=prompt,
            vector_index=vector_index,
            milvus_uri=milvus_uri,
            pod=render.POD_LAYOUT,
        )
        replicas = render.desired_workers(spec, self.old)
        try:
            children = render.render_runtime(
                af,
                doc,
                replicas=replicas,
                milvus_env=milvus_env,
                model_key_secret_ref=model_key_secret_ref,
                routine_key_secret_ref=routine_key_secret_ref,
                token_hashes=token_hashes,
                egress=CONFIG.egress(),
            )
        except OverlayError as e:
            # spec.podTemplate collides with what the operator sets: a problem in Ready, nothing applied.
            self.problem("InvalidSpec", str(e))
            self.condition(
                RUNTIME_READY,
                False,
                "NotRendered",
                "the runtime is not (re)rendered until the problems in Ready are fixed",
            )
            return
        for o in children:
            self.kube.apply(o)
        if not spec.workers.autoscaling:
            self.status["desiredWorkers"] = replicas
        worker = self.get("apps/v1", "Deployment", render.worker_name(self.name))
        api = self.get("apps/v1", "Deployment", render.api_name(self.name))
        wst = (worker or {}).get("status") or {}
        self.status["workers"] = int(wst.get("replicas") or 0)
        self.status["readyWorkers"] = int(wst.get("readyReplicas") or 0)
        w_ok, w_why = render.deployment_available(worker)
        a_ok, a_why = render.deployment_available(api)
        msg = f"workers {w_why}; task API {a_why}"
        if w_ok and a_ok:
            self.condition(RUNTIME_READY, True, "RuntimeAvailable", msg)
        else:
            self.busy = True
            self.condition(RUNTIME_READY, False, "RuntimeProgressing", msg)

    # --- summary and status ---

    def summarise(self) -> None:
        if self.problems:
            p = self.problems[0]
            more = (
                f" (and {len(self.problems) - 1} more: {', '.join(q.reason for q in self.problems[1:])})"
                if len(self.problems) > 1
                else ""
            )
            self.condition(READY, False, p.reason, p.message + more)
            return
        for type_, reason in (
            (MODEL_READY, "WaitingForModel"),
            (INDEX_READY, "WaitingForIndex"),
            (REDIS_READY, "WaitingForRedis"),
            (RUNTIME_READY, "WaitingForRuntime"),
        ):
            c = get_condition(self.conditions, type_)
            if c is not None and c["status"] != "True":
                self.condition(READY, False, reason, c["message"])
                return
        was = self.is_true(READY)
        self.condition(
            READY,
            True,
            "Ready",
            f"{self.status.get('readyWorkers', 0)} worker(s) ready; tasks at {self.status.get('taskApiEndpoint')}",
        )
        if not was:
            self.event("Normal", "Ready", "the fleet takes and runs tasks")

    def write_status(self) -> None:
        self.status["observedGeneration"] = self.generation
        self.status["conditions"] = self.conditions
        own = (*OWN_FIELDS, "desiredWorkers") if "desiredWorkers" in self.status else OWN_FIELDS
        try:
            # Unchanged: no write, so no event that would bring this pass back.
            StatusWriter(self.kube, API_VERSION, KIND, FIELD_MANAGER).apply(
                self.ns, self.name, self.status, before=own_part(self.old, own, OWN_CONDITIONS)
            )
        except NotFoundError:
            pass  # deleted during the pass


# --- references: which fleets a ModelReplicaSet or VectorIndex change concerns --------------------


def references(spec: Mapping[str, Any]) -> set[tuple[str, str]]:
    """(kind, name) of what an AgentFleet spec refers to."""
    out: set[tuple[str, str]] = set()
    for field, kind in (
        ("modelRef", "ModelReplicaSet"),
        ("routineModelRef", "ModelReplicaSet"),
        ("vectorIndexRef", "VectorIndex"),
    ):
        name = (spec.get(field) or {}).get("name")
        if name:
            out.add((kind, name))
    sp = (spec.get("systemPrompt") or {}).get("configMapRef") or {}
    if sp.get("name"):
        out.add(("ConfigMap", sp["name"]))
    secret_refs = [
        (spec.get("redis") or {}).get("passwordSecretRef") or {},
        (spec.get("api") or {}).get("authSecretRef") or {},
    ]
    secret_refs += [((t.get("http") or {}).get("headersSecretRef") or {}) for t in spec.get("tools") or []]
    for ref in secret_refs:
        if ref.get("name"):
            out.add(("Secret", ref["name"]))
    return out


# --- the controller ------------------------------------------------------------------------------


@dataclass
class AgentFleetState:
    """What the controller remembers of one AgentFleet: what it refers to, so that a change of a
    ModelReplicaSet, VectorIndex, ConfigMap or Secret wakes the fleets that use it."""

    refs: set[tuple[str, str]] = dataclasses.field(default_factory=set)


class AgentFleetController(Controller[AgentFleetState]):
    api_version, kind, name = API_VERSION, KIND, "agentfleet"

    def __init__(self, kube: Kube, events: EventRecorder | None = None, *, workers: int = 4) -> None:
        super().__init__(
            kube,
            events or EventRecorder(post_with_kube(kube)),
            workers=workers,
            resync=CONFIG.resync_seconds,
            backoff=(BACKOFF_MIN, BACKOFF_MAX),
        )

    def new_state(self) -> AgentFleetState:
        return AgentFleetState()

    def observe_spec(self, key: Key, spec: Mapping[str, Any]) -> None:
        self.state(key).refs = references(spec)

    def referring(self, namespace: str, kind: str, name: str) -> list[Key]:
        return [k for k, st in self.states() if k[0] == namespace and (kind, name) in st.refs]  # type: ignore[index]

    def reconcile(self, key: Key, _: Any) -> float | None:
        obj = self.fetch(key)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            return None
        return AgentFleetPass(self.kube, self.events, obj).run()
