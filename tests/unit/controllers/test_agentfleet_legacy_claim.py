"""The operator's explicit claim of a fleet's keys of the old Redis layout (issue 76, residual 7):
the runtime document says legacyKeys only for a fleet its administrator lists
(AGENTFLEET_LEGACY_KEY_CLAIMS, NAMESPACE/NAME); a same-named fleet elsewhere, and a gate's private
versions, never."""

from __future__ import annotations

from dataclasses import replace

import yaml
from agentfleet_contract.agentfleet import AgentFleet

from agentfleet.controllers.agentfleet.deciding import decide
from agentfleet.controllers.agentfleet.records import Plan
from tests.builders import Fleet
from tests.unit.controllers.test_agentfleet_gating import read


def runtime_doc(ns: str, claims: frozenset[str]) -> dict:
    obj = Fleet("support").ns(ns).meta(generation=1, uid="u-1").obj()
    obs = replace(read(AgentFleet.model_validate(obj), obj), legacy_claims=claims)
    plan = decide(obs)
    assert isinstance(plan, Plan) and plan.runtime is not None
    return dict(plan.runtime.doc or {})


def test_only_the_claimed_fleet_is_told_to_move_the_old_keys():
    claims = frozenset({"team-a/support"})
    assert runtime_doc("team-a", claims).get("legacyKeys") is True
    assert "legacyKeys" not in runtime_doc("team-b", claims)  # the same name, another namespace
    assert "legacyKeys" not in runtime_doc("team-a", frozenset())


def test_a_private_version_of_the_gate_never_moves_keys():
    from agentfleet.render.gate import GateNames, render_candidate

    obj = Fleet("support").ns("team-a").meta(generation=1, uid="u-1").obj()
    obs = replace(read(AgentFleet.model_validate(obj), obj), legacy_claims=frozenset({"team-a/support"}))
    plan = decide(obs)
    assert isinstance(plan, Plan) and plan.runtime is not None
    runtime = [dict(o) for o in plan.runtime.children]
    out = render_candidate(GateNames.of("support", "team-a"), dict(plan.runtime.doc or {}), runtime)
    assert "legacyKeys" not in yaml.safe_load(out[0]["data"]["runtime.yaml"])
