"""A gated fleet's gate over a change of its ModelReplicaSet's model (gating.canary_routes): the
gate records the set's canary hash, its candidate calls the canary replica only, and the
evaluation Job waits until the canary is Ready. The World of test_agentfleet_gating, with the
ModelReplicaSet as the test sets it."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

import yaml
from agentfleet_contract.gate import canary_hash

from agentfleet.controllers.agentfleet import gating
from agentfleet.controllers.agentfleet.records import Observed, Plan
from agentfleet.render import gate as rg
from tests.builders import MRS, Fleet
from tests.unit.controllers.test_agentfleet_gating import OLD, T0, World, applied

QWEN = "Qwen/Qwen2.5-7B-Instruct"


class CanaryWorld(World):
    def __init__(self) -> None:
        super().__init__()
        self.model: dict[str, Any] = MRS("llama-8b").condition("Ready", True, "Ready", "1/1").obj()

    def observe(self, fleet: Fleet, clock: datetime = T0) -> Observed:
        obs = super().observe(fleet, clock)
        models = {"llama-8b": self.model}
        serving = replace(obs.serving, models=models) if obs.serving is not None else None
        return replace(obs, models=models, serving=serving)

    def canary(self, **said: Any) -> None:
        self.model = {**self.model, "status": {**(self.model.get("status") or {}), "canary": said}}


def fleet() -> Fleet:
    return Fleet("support").gate(sample=40).prompt(OLD)


def candidate_routing(plan: Plan) -> dict[str, Any]:
    assert plan.gate is not None
    cm = next(o for o in plan.gate.apply if o["metadata"]["name"] == rg.candidate_config_name("support"))
    return yaml.safe_load(cm["data"]["runtime.yaml"])["modelRouting"]["primary"]


def changed(world: CanaryWorld) -> Plan:
    """The fleet adopted on llama; then its set's model changes to Qwen: the fleet's gate starts."""
    world.canary(hash=canary_hash(world.model["spec"]), phase="Serving")
    world.decide(fleet())
    world.model = MRS("llama-8b").model(QWEN).condition("Ready", True, "Ready", "1/1").obj() | {
        "status": world.model["status"]
    }
    return world.decide(fleet())


def test_the_gate_records_the_canary_and_its_job_waits_until_the_set_has_seen_the_change() -> None:
    world = CanaryWorld()
    plan = changed(world)
    assert plan.gate is not None and plan.gate.report.gate.phase == "Running"
    h = canary_hash(world.model["spec"])
    assert [(c.model_replica_set, c.hash) for c in plan.gate.report.gate.canaries] == [("llama-8b", h)]
    assert "Job" not in [k for k, _ in applied(plan)]  # the set's status.canary still names the old hash
    assert plan.gate.create is not None  # the results ConfigMap is the gate's record from its start
    assert world.gate is not None and world.gate["canaries"] == [{"modelReplicaSet": "llama-8b", "hash": h}]


def test_the_candidate_calls_the_canary_replica_only_and_the_job_starts_when_it_is_ready() -> None:
    world = CanaryWorld()
    changed(world)
    h = canary_hash(world.model["spec"])
    world.canary(hash=h, phase="Running", ready=False)
    loading = world.decide(fleet())
    assert candidate_routing(loading)["service"] == "llama-8b-canary"
    assert "Job" not in [k for k, _ in applied(loading)]
    world.canary(hash=h, phase="Running", ready=True)
    ready = world.decide(fleet())
    assert ("Job", f"support-gate-{world.gate['candidate'][:10]}") in applied(ready)
    assert ready.gate is not None and [p.reason for p in ready.gate.posts] == ["GateCanaryReady"]
    assert candidate_routing(ready)["service"] == "llama-8b-canary"
    # The serving workers keep the set's serving replicas.
    assert ready.runtime is not None
    served = next(o for o in ready.runtime.children if o["metadata"]["name"] == "support-runtime")
    assert "service" not in yaml.safe_load(served["data"]["runtime.yaml"])["modelRouting"]["primary"]


def test_a_set_with_nothing_on_trial_is_called_as_always() -> None:
    world = CanaryWorld()
    world.canary(hash=canary_hash(world.model["spec"]), phase="Serving")
    world.decide(fleet())
    plan = world.decide(Fleet("support").gate(sample=40).prompt("Answer briefly."))
    assert "service" not in candidate_routing(plan)
    assert ("Job", f"support-gate-{world.gate['candidate'][:10]}") in applied(plan)


def test_canary_routes_reads_each_tier() -> None:
    world = CanaryWorld()
    world.canary(hash=canary_hash(world.model["spec"]), phase="Held")
    obs = world.observe(fleet())
    routes = gating.canary_routes(obs, obs.fleet)
    assert routes.canaries == frozenset({"llama-8b"}) and not routes.ready
