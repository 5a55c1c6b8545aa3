"""The decide step of an AgentFleet pass, pure: from what observe read, the references resolved
(models, adapter, index, system prompt, Secrets, Redis), the problems the schema cannot see, the
Redis probe asked for (``NeedsProbe``) and judged, and the children rendered (a typed ``Plan``).

Each part is a function of the fleet it plans for (not only of ``obs.fleet``), so a later step can
plan a second version of the same fleet (the rollout gate's candidate, issue 58) from one
observation. Problems are collected in the order they are found: Ready names the first.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentfleet_contract.agentfleet import AgentFleet, AgentFleetSpec
from agentfleet_contract.agentfleet.api import TLS_CERT_KEY, TLS_KEY_KEY
from agentfleet_contract.common import SecretKeyRef
from agentfleet_contract.conditions import READY, get_condition
from agentfleet_contract.modelreplicaset import ModelReplicaSetSpec
from agentfleet_contract.redis_sentinel import sentinel_url
from agentfleet_contract.runtime_config import (
    DEFAULT_SYSTEM_PROMPT,
    DEFAULT_TENANT,
    ModelTarget,
    runtime_config,
    token_line,
)
from pydantic import ValidationError

from agentfleet.controllers.agentfleet import sharing
from agentfleet.controllers.agentfleet.records import (
    INDEX_READY,
    JSON,
    MODEL_READY,
    NOT_RENDERED,
    PROBE_FAILED,
    REDIS_READY,
    RUNTIME_READY,
    Generated,
    ManagedRedis,
    NeedsProbe,
    Observed,
    Plan,
    Post,
    RuntimePlan,
    Verdict,
)
from agentfleet.reconcile.errors import describe_validation_error
from agentfleet.render import agentfleet as render
from agentfleet.render.budgets import SpecProblem, budget_problems
from agentfleet.render.common import secret_problem
from agentfleet.render.overlay import OverlayError


def _b64(data: Mapping[str, str] | None, key: str) -> str | None:
    raw = (data or {}).get(key)
    return base64.b64decode(raw).decode() if raw else None


def _ready(obj: JSON | None) -> tuple[bool, str]:
    c = get_condition(list((obj or {}).get("status", {}).get("conditions") or []), READY)
    if c is None:
        return False, "no Ready condition yet"
    return c.get("status") == "True", f"{c.get('reason', '')}: {c.get('message', '')}".strip(": ")


# --- what observe reads for decide -----------------------------------------------------------------


def model_names(af: AgentFleet) -> list[str]:
    refs = [af.spec.model_ref, af.spec.routine_model_ref]
    return [r.name for r in refs if r is not None]


def _name(ref: object) -> str | None:
    return ref.get("name") if isinstance(ref, Mapping) else None


def secret_names(af: AgentFleet, models: Mapping[str, JSON | None], index: JSON | None) -> set[str]:
    """Every Secret decide may read for ``af``: those its spec names, those its ModelReplicaSets and
    VectorIndex name for its pods, and the ones the operator generates for it."""
    spec = af.spec
    names: set[str | None] = {r.name for _, r in mounted_refs(af.spec)}
    if spec.redis.password_secret_ref is not None:
        names.add(spec.redis.password_secret_ref.name)
    if spec.redis.deploy is not None:
        names.add(render.redis_secret_name(af.metadata["name"]))
    if spec.api.auth_secret_ref is None:
        names.add(render.api_token_secret_name(af.metadata["name"]))
    for mrs in models.values():
        names.add(_name((((mrs or {}).get("spec") or {}).get("engine") or {}).get("apiKeySecretRef")))
    vspec = (index or {}).get("spec") or {}
    names.add(((vspec.get("milvus") or {}).get("credentials") or {}).get("secretName"))
    names.add(_name((vspec.get("embedding") or {}).get("apiKeySecretRef")))
    return {n for n in names if n}


def generated_names(af: AgentFleet) -> list[str]:
    """The Secrets the operator generates for ``af`` when they do not exist."""
    out = [render.redis_secret_name(af.metadata["name"])] if af.spec.redis.deploy is not None else []
    return out + ([render.api_token_secret_name(af.metadata["name"])] if af.spec.api.auth_secret_ref is None else [])


# --- resolving the references ----------------------------------------------------------------------


@dataclass
class _Found:
    """What resolving finds as it goes (local to one decide): problems in order, models waited for."""

    obs: Observed
    problems: list[SpecProblem] = dataclasses.field(default_factory=list)
    waiting: list[str] = dataclasses.field(default_factory=list)

    @property
    def ns(self) -> str:
        return self.obs.subject.namespace

    def problem(self, reason: str, message: str) -> None:
        self.problems.append(SpecProblem(reason, message))

    def consented_secret(self, field: str, name: str, key: str) -> str | None:
        """The value of a Secret a spec names, if it may be used (render.common.secret_problem);
        otherwise a problem naming the field and the fix, and None."""
        s = self.obs.secrets[name]
        why = secret_problem(dict(s) if s is not None else None, field, name, key, self.ns)
        if why is not None:
            self.problem(*why)
            return None
        return _b64((s or {}).get("data"), key)

    def generated(self, af: AgentFleet, name: str, key: str, component: str) -> Generated:
        """A Secret made once with a random value: its value, and its body when it does not exist."""
        s = self.obs.secrets[name]
        if s is not None:
            return Generated(name, _b64(s.get("data"), key), None)
        value = self.obs.fresh[name]
        return Generated(name, value, render.render_secret(af, name, key, value, component))


def model_target(f: _Found, name: str, field: str) -> tuple[ModelTarget | None, ModelReplicaSetSpec | None]:
    mrs = f.obs.models[name]
    if mrs is None:
        f.problem(
            "ModelNotFound",
            f"ModelReplicaSet {name} named by {field}.name does not exist in namespace {f.ns}: create it "
            f"or fix {field}.name",
        )
        return None, None
    try:
        mspec = ModelReplicaSetSpec.model_validate(mrs.get("spec") or {})
    except ValidationError as e:
        f.problem(
            "ModelNotFound",
            f"ModelReplicaSet {name} named by {field}.name has an invalid spec: "
            f"{describe_validation_error(e, prefix='spec.')}",
        )
        return None, None
    served = (mrs.get("status") or {}).get("servedModelName") or mspec.model.served_name or mspec.model.name
    ok, why = _ready(mrs)
    if not ok:
        f.waiting.append(f"ModelReplicaSet {name} ({field}) is not Ready: {why}")
    target = ModelTarget(
        name=name,
        served_name=served,
        port=mspec.engine.port,
        routing=mspec.routing.wire(),
        max_model_len=mspec.engine.max_model_len,
    )
    return target, mspec


def adapter_target(
    f: _Found, target: ModelTarget | None, mspec: ModelReplicaSetSpec | None, name: str | None
) -> ModelTarget | None:
    """spec.modelAdapter: the agents call that LoRA adapter of the set, which must list it."""
    if target is None or mspec is None or name is None:
        return target
    if name not in {a.name for a in mspec.adapters}:
        listed = ", ".join(a.name for a in mspec.adapters) or "none"
        f.problem(
            "AdapterNotFound",
            f"spec.modelAdapter {name} is not among spec.adapters of ModelReplicaSet {target.name} ({listed}): "
            "add it there or fix spec.modelAdapter",
        )
        return None
    return dataclasses.replace(target, served_name=name, adapter=True, adapters=tuple(a.name for a in mspec.adapters))


def model_keys(f: _Found, tiers: list[tuple[str, str, ModelReplicaSetSpec | None]]) -> None:
    """The workers get each tier's API key from its own ModelReplicaSet's Secret and send each
    tier its own. A Secret a set names (spec.engine.apiKeySecretRef) needs the consent label
    here too, as every Secret a fleet's pods get: naming a set must not mount any Secret of the
    namespace into the workers (the operator's generated <set>-vllm-api-key carries it)."""
    for field, name, mspec in tiers:
        ref = mspec.engine.api_key_secret_ref if mspec is not None else None
        if ref is not None:
            f.consented_secret(f"ModelReplicaSet {name} ({field}) spec.engine.apiKeySecretRef", ref.name, ref.key)


def model_verdict(f: _Found, af: AgentFleet) -> Verdict:
    missing = [p for p in f.problems if p.reason == "ModelNotFound"]
    if missing:
        return Verdict(MODEL_READY, False, "ModelNotFound", missing[0].message)
    if f.waiting:
        return Verdict(MODEL_READY, False, "ModelNotReady", "; ".join(f.waiting))
    return Verdict(MODEL_READY, True, "ModelReady", f"ModelReplicaSet {', '.join(model_names(af))} Ready")


@dataclass(frozen=True)
class IndexLink:
    """The VectorIndex as the runtime gets it: its spec (wire form), endpoint and Secret env."""

    spec: JSON | None = None
    uri: str | None = None
    env: tuple[JSON, ...] = ()


def _secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def index_link(f: _Found, af: AgentFleet) -> tuple[IndexLink, Verdict | None]:
    ref = af.spec.vector_index_ref
    if ref is None:
        return IndexLink(), None
    vi = f.obs.index
    if vi is None:
        msg = (
            f"VectorIndex {ref.name} named by spec.vectorIndexRef.name does not exist in namespace {f.ns}: "
            "create it or fix spec.vectorIndexRef.name"
        )
        f.problem("IndexNotFound", msg)
        return IndexLink(), Verdict(INDEX_READY, False, "IndexNotFound", msg)
    ok, why = _ready(vi)
    if ok:
        verdict = Verdict(INDEX_READY, True, "IndexReady", f"VectorIndex {ref.name} is searchable")
    else:
        verdict = Verdict(INDEX_READY, False, "IndexNotReady", f"VectorIndex {ref.name} is not Ready: {why}")
    vspec = vi.get("spec") or {}
    uri = (vi.get("status") or {}).get("endpoint") or (vspec.get("milvus") or {}).get("uri")
    creds = (vspec.get("milvus") or {}).get("credentials")
    user_key = pass_key = ""
    # The workers get these Secrets too: the same consent as the fleet's own.
    if creds:
        user_key, pass_key = creds.get("usernameKey", "username"), creds.get("passwordKey", "password")
        for k in (user_key, pass_key):
            f.consented_secret(f"VectorIndex {ref.name} spec.milvus.credentials", creds["secretName"], k)
    key_ref = (vspec.get("embedding") or {}).get("apiKeySecretRef")
    if key_ref is not None:
        f.consented_secret(f"VectorIndex {ref.name} spec.embedding.apiKeySecretRef", key_ref["name"], key_ref["key"])
    env: list[JSON] = []
    if creds:
        env.append(_secret_env("AGENTFLEET_MILVUS_USER", creds["secretName"], user_key))
        env.append(_secret_env("AGENTFLEET_MILVUS_PASSWORD", creds["secretName"], pass_key))
    if key_ref:
        env.append(_secret_env("AGENTFLEET_EMBEDDING_API_KEY", key_ref["name"], key_ref["key"]))
    return IndexLink(vspec, uri, tuple(env)), verdict


def system_prompt(f: _Found, af: AgentFleet) -> str | None:
    sp = af.spec.system_prompt
    if sp is None:
        return DEFAULT_SYSTEM_PROMPT
    if sp.inline is not None:
        return sp.inline
    assert sp.config_map_ref is not None
    cm = f.obs.prompt
    text = None if cm is None else (cm.get("data") or {}).get(sp.config_map_ref.key)
    if text is None:
        f.problem(
            "SystemPromptNotFound",
            f"spec.systemPrompt.configMapRef: ConfigMap {sp.config_map_ref.name} has no key "
            f"{sp.config_map_ref.key} in namespace {f.ns}: create it or fix the reference",
        )
    return text


TLS_KEYS = (TLS_CERT_KEY, TLS_KEY_KEY)


def mounted_refs(spec: AgentFleetSpec) -> list[tuple[str, SecretKeyRef]]:
    """Secrets the pods mount, with the field that names each. The controller's ``references``
    watches the same list, so labelling one of them wakes the fleet at once."""
    refs = []
    if spec.api.auth_secret_ref is not None:
        refs.append(("spec.api.authSecretRef", spec.api.auth_secret_ref))
    if (tls := spec.api.tls) is not None:
        # The task API pods mount both keys: a missing one would leave them in ContainerCreating.
        refs += [("spec.api.tls.secretName", SecretKeyRef(name=tls.secret_name, key=k)) for k in TLS_KEYS]
    for i, t in enumerate(spec.tools):
        refs += [(f"spec.tools[{i}].{field} ({t.name})", ref) for field, ref in t.secret_refs()]
    if spec.tracing is not None and spec.tracing.headers_secret_ref is not None:
        refs.append(("spec.tracing.headersSecretRef", spec.tracing.headers_secret_ref))
    return refs


def secret_refs(f: _Found, af: AgentFleet) -> None:
    """Secrets the pods mount: a missing one would leave them waiting in ContainerCreating, and
    one without the consent label is not used at all."""
    refused: set[tuple[str, str]] = set()
    for field, ref in mounted_refs(af.spec):
        if (field, ref.name) in refused:
            continue  # one problem per Secret a field names (spec.api.tls.secretName names two keys)
        before = len(f.problems)
        f.consented_secret(field, ref.name, ref.key)
        if len(f.problems) > before:
            refused.add((field, ref.name))


@dataclass(frozen=True)
class RedisTarget:
    """The fleet's Redis: its URL and password (None, None: its password Secret may not be used)."""

    url: str | None
    password: str | None
    managed: ManagedRedis | None = None
    verdict: Verdict | None = None  # RedisReady, when known before the probe and act


def redis_target(f: _Found, af: AgentFleet) -> RedisTarget:
    """(URL, password) of the fleet's Redis; the managed one's children."""
    r, name = af.spec.redis, af.metadata["name"]
    if r.deploy is not None:
        password = f.generated(af, render.redis_secret_name(name), render.REDIS_PASSWORD_KEY, "redis")
        managed = ManagedRedis(password, tuple(render.render_redis(af, f.obs.peers)), render.redis_name(name))
        return RedisTarget(render.managed_redis_url(name, f.ns), password.value, managed)
    url = r.url if r.sentinel is None else sentinel_url(r.sentinel.addresses, r.sentinel.master_name)
    assert url is not None
    pw = None
    if r.password_secret_ref is not None:
        ref = r.password_secret_ref
        pw = f.consented_secret("spec.redis.passwordSecretRef", ref.name, ref.key)
        if pw is None:
            last = f.problems[-1]
            return RedisTarget(None, None, verdict=Verdict(REDIS_READY, False, last.reason, last.message))
    return RedisTarget(url, pw)


# --- the runtime -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Resolved:
    """A fleet's references resolved: what rendering its runtime takes."""

    primary: ModelTarget | None
    routine: ModelTarget | None
    keys: tuple[SecretKeyRef | None, SecretKeyRef | None]  # each tier's spec.engine.apiKeySecretRef
    index: IndexLink
    prompt: str | None
    redis: RedisTarget
    verdicts: tuple[Verdict, ...]


def resolve(f: _Found, af: AgentFleet) -> Resolved:
    spec = af.spec
    primary, primary_spec = model_target(f, spec.model_ref.name, "spec.modelRef")
    primary = adapter_target(f, primary, primary_spec, spec.model_adapter)
    routine = routine_spec = None
    tiers = [("spec.modelRef", spec.model_ref.name, primary_spec)]
    if spec.routine_model_ref is not None:
        routine, routine_spec = model_target(f, spec.routine_model_ref.name, "spec.routineModelRef")
        tiers.append(("spec.routineModelRef", spec.routine_model_ref.name, routine_spec))
    model_keys(f, tiers)
    verdicts = [model_verdict(f, af)]
    index, index_verdict = index_link(f, af)
    verdicts += [index_verdict] if index_verdict is not None else []
    prompt = system_prompt(f, af)
    if prompt is not None:
        context = primary_spec.engine.max_model_len if primary_spec is not None else None
        f.problems.extend(budget_problems(spec, prompt, context))
    secret_refs(f, af)
    redis = redis_target(f, af)
    verdicts += [redis.verdict] if redis.verdict is not None else []
    keys = (
        primary_spec.engine.api_key_secret_ref if primary_spec is not None else None,
        routine_spec.engine.api_key_secret_ref if routine_spec is not None else None,
    )
    return Resolved(primary, routine, keys, index, prompt, redis, tuple(verdicts))


def plan_runtime(f: _Found, af: AgentFleet, r: Resolved, token: Generated | None) -> RuntimePlan | None:
    """The runtime's children, or None (a problem) when spec.podTemplate collides with what the operator sets."""
    assert r.primary is not None and r.redis.url is not None
    doc = runtime_config(
        af,
        primary=r.primary,
        routine=r.routine,
        redis_url=r.redis.url,
        system_prompt=r.prompt,
        vector_index=dict(r.index.spec) if r.index.spec is not None else None,
        milvus_uri=r.index.uri,
        pod=render.POD_LAYOUT,
    )
    if f"{f.ns}/{af.metadata['name']}" in f.obs.legacy_claims:
        # Only the operator's claim moves the old layout's keys: never the first namespace to start.
        doc["legacyKeys"] = True
    replicas = render.desired_workers(af.spec, dict(f.obs.subject.status))
    # The Secret keeps the token for its users; the task API gets only its hash.
    token_hashes = token_line(DEFAULT_TENANT, token.value) if token is not None and token.value else None
    try:
        children = render.render_runtime(
            af,
            doc,
            replicas=replicas,
            milvus_env=[dict(e) for e in r.index.env],
            model_key_secret_ref=r.keys[0],
            routine_key_secret_ref=r.keys[1],
            token_hashes=token_hashes,
            egress=f.obs.egress,
        )
    except OverlayError as e:
        # spec.podTemplate collides with what the operator sets: a problem in Ready, nothing applied.
        f.problem("InvalidSpec", str(e))
        return None
    name = af.metadata["name"]
    desired = None if af.spec.workers.autoscaling else replicas
    return RuntimePlan(tuple(children), replicas, desired, render.worker_name(name), render.api_name(name), doc)


def probe_verdict(obs: Observed, url: str) -> tuple[Verdict, tuple[Post, ...]]:
    """RedisReady of an external Redis, from the probe: one fixed text for every failure."""
    assert obs.probed is not None
    if obs.probed.ok:
        return Verdict(REDIS_READY, True, "RedisReady", f"{url} answers"), ()
    msg = f"cannot reach Redis at {url}: {PROBE_FAILED}"
    return Verdict(REDIS_READY, False, "RedisUnreachable", msg), (Post("Warning", "RedisUnreachable", msg),)


def decide(obs: Observed) -> Plan | NeedsProbe:
    """The plan for the fleet as written (the gate's step, gating.py, plans its serving version)."""
    return plan_fleet(obs, obs.fleet)[0]


def plan_fleet(obs: Observed, af: AgentFleet) -> tuple[Plan | NeedsProbe, Resolved]:
    """The plan for ``af`` (the fleet as written, or its serving version) from ``obs``, which
    read what ``af`` names; and its references resolved (what the gate's hash covers)."""
    f = _Found(obs)
    r = resolve(f, af)
    if r.redis.url is not None and obs.probed is None:
        return NeedsProbe(r.redis.url, r.redis.password), r
    verdicts, token, runtime = list(r.verdicts), None, None
    if not f.problems and r.primary is not None and r.redis.url is not None:
        if af.spec.api.auth_secret_ref is None:
            token = f.generated(af, render.api_token_secret_name(af.metadata["name"]), render.TOKEN_KEY, "api")
        runtime = plan_runtime(f, af, r, token)
    if runtime is None:
        verdicts.append(Verdict(RUNTIME_READY, False, "NotRendered", NOT_RENDERED))
    posts = [Post("Warning", p.reason, p.message) for p in f.problems]
    identity = None
    if r.redis.url is not None and r.redis.managed is None:
        verdict, unreachable = probe_verdict(obs, r.redis.url)
        verdicts.append(verdict)
        posts += unreachable
        # Only a Redis that took the fleet's password says who it is (no oracle for anyone else's).
        identity = obs.probed.identity if obs.probed is not None and obs.probed.ok else None
    if r.redis.url is not None:
        # Whether another fleet shares trust over this fleet's Redis (row 76.6d): a warning, not in Ready.
        me = (obs.subject.namespace, af.metadata["name"])
        shared, warned = sharing.judge(me, identity, obs.neighbours, managed=r.redis.managed is not None)
        verdicts.append(shared)
        posts += warned
    endpoint = render.task_api_endpoint(af.metadata["name"], obs.subject.namespace, tls=af.spec.api.tls is not None)
    plan = Plan(
        selector=render.selector_string(af.metadata["name"]),
        endpoint=endpoint,
        a2a_endpoint=(af.spec.a2a.url or endpoint) if af.spec.a2a is not None else None,
        problems=tuple(f.problems),
        verdicts=tuple(verdicts),
        redis=r.redis.managed,
        token=token,
        runtime=runtime,
        stats=obs.probed.stats if r.redis.url is not None and obs.probed is not None else None,
        posts=tuple(posts),
        redis_identity=identity,
    )
    return plan, r
