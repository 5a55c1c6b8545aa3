"""The adapters step of a ModelReplicaSet pass: every ready replica holds exactly spec.adapters.

vLLM loads and unloads LoRA adapters at run time (``POST /v1/load_lora_adapter``, ``POST
/v1/unload_lora_adapter``, with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING`` set, which the operator renders
whenever the spec has adapters) and lists the loaded ones in ``/v1/models`` with the base model as
their ``parent`` and their path as ``root``. So a change of the list reaches every replica on the
next pass without a restart, and a replica that restarted (empty) is filled again on the pass that
finds it ready. Each replica answers for itself: one that cannot be reached or refuses an adapter
keeps what it has, and a Warning says which and why. ``status.placements[].adapters`` is what each
replica answered last.

``adapter_actions`` (pure) decides; ``AdapterClient`` is the HTTP, with the replicas' API key
(``read_api_key``); ``sync_replica`` brings one replica to a list, ``sync_adapters`` every ready one.
"""

from __future__ import annotations

import base64
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from agentfleet_contract.modelreplicaset import ModelReplicaSet

if TYPE_CHECKING:
    from agentfleet.controllers.modelreplicaset.services import AdapterApi, PassKube, PassServices

from agentfleet.controllers.modelreplicaset.records import Observed, Post, ReplicaRecord
from agentfleet.controllers.modelreplicaset.replica_http import OPENER, is_redirect
from agentfleet.render.common import API_KEY_KEY, api_key_secret_name
from agentfleet.replica_rollout import READY_PHASE

log = logging.getLogger(__name__)

# The adapter API answers at once (a load reads the adapter's weights: tens of MB); a replica that
# does not must not hold up the pass for long.
ADAPTER_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class AdapterActions:
    load: list[tuple[str, str]] = field(default_factory=list)  # (name, source)
    unload: list[str] = field(default_factory=list)


def adapter_actions(desired: Mapping[str, str], loaded: Mapping[str, str]) -> AdapterActions:
    """``desired``/``loaded``: adapter name -> source. A source changed under the same name is
    unloaded and loaded again: vLLM has no reload."""
    changed = sorted(n for n, src in loaded.items() if n in desired and desired[n] != src)
    unload = sorted(n for n in loaded if n not in desired) + changed
    load = [(n, src) for n, src in desired.items() if n not in loaded or n in changed]
    return AdapterActions(load=load, unload=unload)


class AdapterError(Exception):
    """A replica refused or did not answer. The message is a fixed text (which call, which kind of
    failure) because it goes into Events; what the replica answered is only in the operator's log."""


class AdapterClient:
    """vLLM's adapter API on one replica endpoint ``host:port``."""

    def __init__(self, endpoint: str, api_key: str | None, timeout: float = ADAPTER_TIMEOUT_SECONDS) -> None:
        self.base = f"http://{endpoint}"
        self.headers = {
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {api_key}"} if api_key else {}),
        }
        self.timeout = timeout

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> bytes:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=self.headers)
        try:
            with OPENER.open(req, timeout=self.timeout) as resp:
                return resp.read(4 << 20)
        except urllib.error.HTTPError as e:
            if is_redirect(e.code):
                log.warning("%s %s%s: redirect to %.200s refused", method, self.base, path, e.headers.get("Location"))
                raise AdapterError(f"{method} {path}: the replica answered a redirect, which is not followed") from e
            log.warning("%s %s%s: HTTP %s %.300r", method, self.base, path, e.code, e.read(2048))
            raise AdapterError(f"{method} {path}: the replica refused the call (HTTP {e.code // 100}xx)") from e
        except (OSError, ValueError) as e:
            log.warning("%s %s%s: %s", method, self.base, path, e)
            raise AdapterError(f"{method} {path}: the replica did not answer") from e

    def loaded(self) -> dict[str, str]:
        """Adapter name -> source, from /v1/models (entries with a parent are adapters)."""
        try:
            models = json.loads(self._call("GET", "/v1/models")).get("data") or []
        except (ValueError, AttributeError) as e:
            log.warning("GET %s/v1/models: not the OpenAI model list: %s", self.base, e)
            raise AdapterError("GET /v1/models: the replica's answer is not the OpenAI model list") from e
        return {str(m["id"]): str(m.get("root") or "") for m in models if isinstance(m, dict) and m.get("parent")}

    def load(self, name: str, source: str) -> None:
        self._call("POST", "/v1/load_lora_adapter", {"lora_name": name, "lora_path": source})

    def unload(self, name: str) -> None:
        self._call("POST", "/v1/unload_lora_adapter", {"lora_name": name})


def sync_replica(client: AdapterApi, desired: Mapping[str, str]) -> tuple[list[str], str | None]:
    """Bring one replica to ``desired``: (the adapters it holds after, the first failure or None)."""
    try:
        loaded = client.loaded()
    except AdapterError as e:
        return [], str(e)
    actions = adapter_actions(desired, loaded)
    held = dict(loaded)
    for name in actions.unload:
        try:
            client.unload(name)
            held.pop(name, None)
        except AdapterError as e:
            return sorted(held), str(e)
    for name, source in actions.load:
        try:
            client.load(name, source)
            held[name] = source
        except AdapterError as e:
            return sorted(held), str(e)
    return sorted(held), None


def read_api_key(kube: PassKube, ns: str, name: str, mrs: ModelReplicaSet) -> str | None:
    """The key the replicas of the set ``ns``/``name`` require (the operator's own generated one, or
    ``mrs``'s spec.engine.apiKeySecretRef)."""
    ref = mrs.spec.engine.api_key_secret_ref
    secret_name, key = (ref.name, ref.key) if ref is not None else (api_key_secret_name(name), API_KEY_KEY)
    secret = kube.get("v1", "Secret", secret_name, ns) or {}
    value = (secret.get("data") or {}).get(key)
    return base64.b64decode(value).decode() if value else (secret.get("stringData") or {}).get(key)


def sync_adapters(
    ctl: PassServices, obs: Observed, records: Mapping[str, ReplicaRecord]
) -> tuple[dict[str, ReplicaRecord], list[Post]]:
    """Every ready replica brought to spec.adapters, side by side: (the records that say what each
    holds now, a Warning for each that did not get there)."""
    desired = {a.name: a.source for a in obs.spec.adapters}
    ready = [(r, rec) for r, rec in sorted(records.items()) if rec.phase == READY_PHASE and rec.endpoint]
    if not desired and not any(rec.adapters for _, rec in ready):
        return {}, []  # no adapters asked for and none known loaded: no replica is asked anything
    key = read_api_key(ctl.kube, obs.ns, obs.name, obs.mrs)
    results: dict[str, tuple[list[str], str | None]] = {}

    def one(item: tuple[str, ReplicaRecord]) -> None:
        r, rec = item
        assert rec.endpoint is not None
        results[r] = sync_replica(ctl.adapter_client(rec.endpoint, key), desired)

    ctl.fan_out(one, ready)
    synced: dict[str, ReplicaRecord] = {}
    posts: list[Post] = []
    for r, (held, error) in sorted(results.items()):
        synced[r] = replace(records[r], adapters=tuple(held))
        if error:
            why = f"replica {r} holds {held or 'no adapters'} of spec.adapters: {error}"
            posts.append(Post("Warning", "AdapterSyncFailed", why))
    return synced, posts
