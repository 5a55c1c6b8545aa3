"""The autoscaler's Controller: which objects it evaluates (fed by agentfleet.handlers.autoscaler),
when (one evaluation per period per object, sooner when a sleeping object is woken), and what its
evaluations share (Prometheus readers, the fleets' model references, the wake watch)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable, Mapping
from typing import Any, ClassVar

from agentfleet_contract.common import API_VERSION

from agentfleet.autoscale.sleep import SLEEPING, WAKING, SleepState
from agentfleet.autoscale.workers import fleets_using, task_demand
from agentfleet.controllers.autoscaler import settings as knobs
from agentfleet.controllers.autoscaler.evaluation import Evaluation, ModelEvaluation, WorkersEvaluation
from agentfleet.controllers.autoscaler.reads import ClusterReads, MetricsReader
from agentfleet.controllers.autoscaler.settings import (
    AF,
    AUTOSCALER_MANAGER,
    MIN_PERIOD_SECONDS,
    MRS,
    WORKERS_PERIOD_SECONDS,
    AutoscalerSettings,
    AutoscaleState,
    Key,
)
from agentfleet.controllers.settings import CONFIG
from agentfleet.controllers.wakewatch import WakeWatch
from agentfleet.kube import Kube
from agentfleet.promql import PromReader
from agentfleet.reconcile.controller import FORGET, Controller
from agentfleet.reconcile.events import EventRecorder, post_with_kube

log = logging.getLogger("agentfleet.autoscaler")


class AutoscalerController(Controller[AutoscaleState]):
    api_version, kind, name = API_VERSION, "Autoscaler", "autoscaler"
    steps: ClassVar[tuple[type, ...]] = (ModelEvaluation, WorkersEvaluation)

    def __init__(
        self,
        kube: Kube,
        events: EventRecorder | None = None,
        *,
        settings: AutoscalerSettings | None = None,
        reads: ClusterReads | None = None,
        readers: Callable[[str], MetricsReader] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # One evaluation at a time is plenty: each is a few Prometheus queries every 15 s.
        super().__init__(
            kube,
            events or EventRecorder(post_with_kube(kube)),
            workers=2,
            resync=CONFIG.resync_seconds,
            backoff=(MIN_PERIOD_SECONDS, 60.0),
        )
        self.settings = settings or AutoscalerSettings.from_env()
        self.reads = reads or ClusterReads(kube)
        self._readers: dict[str, PromReader] = {}
        self.reader = readers or self._reader
        self.clock = clock
        # Every AgentFleet's model references, from the watch (track_agentfleet): the task layer of
        # an evaluation reads them here instead of listing the namespace's AgentFleets each time.
        self.fleets: dict[tuple[str, str], dict[str, Any]] = {}
        # While an object sleeps, its fleets' task streams are watched, so a task wakes it at once.
        self.wake_watch = WakeWatch(self.reads.task_stream, self.woken)

    def _reader(self, url: str) -> PromReader:
        if url not in self._readers:
            self._readers[url] = PromReader(url)
        return self._readers[url]

    def new_state(self) -> AutoscaleState:
        return AutoscaleState()

    # --- what to evaluate (on the event loop, from the handlers) ---

    def track(self, kind: str, namespace: str, name: str, *, wanted: bool, deleted: bool) -> None:
        key: Key = (kind, namespace, name)
        if deleted:
            self.wake_watch.watch(key, namespace, ())
            self.forget(key)
        elif wanted:
            new = self.known_state(key) is None
            self.state(key).release = False
            # A new object is first evaluated a tick later, as its pods are only being created:
            # "no replica to measure" at once would read an empty fleet.
            self.enqueue(key, MIN_PERIOD_SECONDS if new else 0.0)
        elif self.known_state(key) is not None and kind == MRS:
            # Turned off: its status fields and conditions are released (an empty apply under its
            # manager), so no stale ScalingActive stays.
            self.state(key).release = True
            self.enqueue(key)

    def track_fleet_refs(
        self,
        namespace: str,
        name: str,
        spec: Mapping[str, Any] | None,
        meta: Mapping[str, Any],
        *,
        deleted: bool,
        status: Mapping[str, Any] | None = None,
    ) -> None:
        if deleted:
            self.fleets.pop((namespace, name), None)
            return
        refs = {k: dict(spec[k]) for k in ("modelRef", "routineModelRef") if (spec or {}).get(k)}
        phase = ((status or {}).get("sleep") or {}).get("state")
        self.fleets[(namespace, name)] = {
            "metadata": {"name": name, "deletionTimestamp": meta.get("deletionTimestamp")},
            "spec": refs,
            "sleep": phase,
        }
        if phase == WAKING:
            # A fleet waking wakes the sleeping ModelReplicaSets it calls now, not a poll later.
            for ref in refs.values():
                key: Key = (MRS, namespace, str(ref.get("name")))
                known = self.known_state(key)
                if known is not None and known.sleep is not None and known.sleep.phase == SLEEPING:
                    self.enqueue(key)

    def fleets_in(self, namespace: str) -> list[dict[str, Any]]:
        return [af for (ns, _), af in list(self.fleets.items()) if ns == namespace]

    # --- one evaluation ---

    def reconcile(self, key: Hashable, _: Any) -> Any:
        kind, namespace, name = key  # type: ignore[misc]
        state = self.state(key)
        if state.release:
            self.wake_watch.watch(key, namespace, ())
            self.apply_status(kind, namespace, name, {})
            return FORGET
        obj = self.kube.get(API_VERSION, kind, name, namespace)
        if obj is None or obj["metadata"].get("deletionTimestamp"):
            self.wake_watch.watch(key, namespace, ())
            return None
        period = self.period(kind, obj, state.sleep)
        now = self.clock()
        if now - state.last_eval < period - 0.5 and not state.woken:
            return max(min(MIN_PERIOD_SECONDS, period), period - (now - state.last_eval))
        state.last_eval, state.woken = now, False
        return self.evaluation(kind, obj, state, now).run()

    def evaluation(self, kind: str, obj: dict[str, Any], state: AutoscaleState, now: float) -> Evaluation:
        steps = ModelEvaluation if kind == MRS else WorkersEvaluation
        return steps(self, obj, state, now)

    def evaluate_modelreplicaset(
        self, obj: dict[str, Any], state: AutoscaleState, now: float
    ) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
        """observe -> decide -> act, without the write: the status fields and Events it asks for."""
        return self._evaluate(ModelEvaluation(self, obj, state, now))

    def evaluate_workers(
        self, obj: dict[str, Any], state: AutoscaleState, now: float | None = None
    ) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
        return self._evaluate(WorkersEvaluation(self, obj, state, self.clock() if now is None else now))

    @staticmethod
    def _evaluate(
        ev: ModelEvaluation | WorkersEvaluation,
    ) -> tuple[dict[str, Any], list[tuple[str, str, str]]]:
        observed, plan = ev.settle(ev.observe())  # type: ignore[arg-type]
        ev.act(observed, plan)  # type: ignore[arg-type]
        return plan.fields.wire(), [p.wire() for p in plan.posts]

    def watch_while_asleep(self, key: Key, sleep: SleepState | None) -> None:
        """A sleeping object wakes on a task in its fleets' streams (wakewatch.py), a ModelReplicaSet
        on those of the fleets that call it, an AgentFleet's workers on its own."""
        kind, namespace, name = key
        fleets: list[str] = []
        if sleep is not None and sleep.phase == SLEEPING:
            fleets = fleets_using(self.fleets_in(namespace), name) if kind == MRS else [name]
        self.wake_watch.watch(key, namespace, fleets)

    def woken(self, key: Hashable) -> None:
        """From a watch's thread: a task arrived for a sleeping object; evaluate it now."""
        state = self.known_state(key)
        if state is not None:
            state.woken = True
            self.queue.add_threadsafe(key, urgent=True)

    @staticmethod
    def period(kind: str, obj: Mapping[str, Any], sleep: SleepState | None = None) -> float:
        if sleep is not None and sleep.phase in (SLEEPING, WAKING):
            return knobs.SLEEP_POLL_SECONDS
        if kind == AF:
            return WORKERS_PERIOD_SECONDS
        return float(((obj.get("spec") or {}).get("autoscaling") or {}).get("evaluationPeriodSeconds") or 15)

    def apply_status(self, kind: str, namespace: str, name: str, status: dict[str, Any]) -> None:
        body = {
            "apiVersion": API_VERSION,
            "kind": kind,
            "metadata": {"name": name, "namespace": namespace},
            "status": status,
        }
        try:
            self.kube.apply_status(body, manager=AUTOSCALER_MANAGER)
        except Exception as exc:  # noqa: BLE001 - gone already, or the API hiccuped: nothing to hold on to
            log.info("%s/%s: releasing the autoscaler's status fields failed: %s", namespace, name, exc)

    def task_layer(self, namespace: str, model: str, url: str) -> float | None:
        """Tasks queued + in flight at the AgentFleets in ``namespace`` that call ModelReplicaSet
        ``model``, read from their workers' metrics in the Prometheus at ``url`` (the series the
        workers autoscaler reads). None - the policy then runs on the engine's metrics alone - when
        no fleet uses the model, or any fleet's figures cannot be read."""
        try:
            names = fleets_using(self.fleets_in(namespace), model)
        except Exception as exc:  # noqa: BLE001 - the task layer is an extra signal, never a blocker
            log.warning(f"listing AgentFleets failed, scaling without the task layer: {exc}")
            return None
        prom = self.reader(url)
        return task_demand(
            [prom.worker_signals(self.settings.worker_matchers.format(namespace=namespace, name=n)) for n in names]
        )
