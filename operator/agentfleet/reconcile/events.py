"""The one Event recorder of the operator.

De-duplication has one rule: a problem (``once=True``) that persists is posted again only after
``repeat_seconds``; an action (``once=False``: a replica deleted, a scale step) is posted every time
bar an identical one within ``action_seconds``, so a loop can never flood. Every Event is logged
as well, so a cluster without the Event API (or a unit test) still shows it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any

log = logging.getLogger("agentfleet.events")

# Kubernetes keeps Events for an hour: a problem that lasts is repeated well within that.
REPEAT_SECONDS = 600.0
ACTION_SECONDS = 30.0
REMEMBERED_PER_OBJECT = 256

Post = Callable[[Mapping[str, Any], str, str, str], None]


class EventRecorder:
    """Posts Events about objects through ``post(obj, type, reason, message)``.

    ``post`` is the controller's choice of transport (kopf's queued poster, or a direct API write);
    the recorder owns when an Event is worth posting. Thread-safe: reconciles run in threads."""

    def __init__(
        self,
        post: Post,
        *,
        clock: Callable[[], float] = time.time,
        repeat_seconds: float = REPEAT_SECONDS,
        action_seconds: float = ACTION_SECONDS,
    ) -> None:
        self.post = post
        self.clock = clock
        self.repeat_seconds = repeat_seconds
        self.action_seconds = action_seconds
        self._posted: dict[Hashable, dict[tuple[str, str, str], float]] = {}
        self._lock = threading.Lock()

    def event(self, obj: Mapping[str, Any], type_: str, reason: str, message: str, *, once: bool = True) -> bool:
        """Post unless de-duplicated; True when posted."""
        meta = obj["metadata"]
        key = (meta.get("namespace"), meta["name"])
        what = (type_, reason, message)
        now = self.clock()
        with self._lock:
            seen = self._posted.setdefault(key, {})
            if now - seen.get(what, -1e18) < (self.repeat_seconds if once else self.action_seconds):
                return False
            seen[what] = now
            if len(seen) > REMEMBERED_PER_OBJECT:
                for k, _ in sorted(seen.items(), key=lambda kv: kv[1])[: REMEMBERED_PER_OBJECT // 2]:
                    seen.pop(k, None)
        log.log(
            logging.WARNING if type_ == "Warning" else logging.INFO, "%s/%s %s: %s", key[0], key[1], reason, message
        )
        try:
            self.post(obj, type_, reason, message[:1024])
        except Exception as e:  # noqa: BLE001 - an Event that cannot be posted never fails a reconcile
            log.debug("event not posted: %s", e)
        return True

    def forget(self, key: Hashable) -> None:
        with self._lock:
            self._posted.pop(key, None)


def post_with_kopf(obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
    """Through kopf's queued poster: no API round trip inside a reconcile. Outside kopf (scripts,
    unit tests) there is no poster, and the log line is all there is."""
    import kopf

    meta = obj["metadata"]
    ref = {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid")},
    }
    try:
        kopf.event(ref, type=type_, reason=reason, message=message)
    except LookupError:
        pass


def post_with_kube(kube: Any) -> Post:
    """Events as direct API writes (core/v1 Event through agentfleet.kube.Kube), from any thread."""
    return lambda obj, type_, reason, message: kube.event(dict(obj), type_, reason, message)
