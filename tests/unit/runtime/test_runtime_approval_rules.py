"""The pure parts of approvals.py: which calls a policy gates (JSON-pointer conditions, failing
closed), the API body's validation, and the spec's rules."""

from __future__ import annotations

import pydantic
import pytest
from agentfleet_contract.agentfleet import ToolPolicy

from agentfleet_runtime.core.types import ToolCall
from agentfleet_runtime.store.approvals import Condition, Gate, Request, denial_text, parse_request, resolve


def call(args: dict, name: str = "pay") -> ToolCall:
    return ToolCall("c1", name, args)


def gate(*when: dict, timeout: int = 60) -> Gate:
    spec = {
        "toolPolicies": [
            {"tool": "pay", "requireApproval": {"when": list(when), "timeoutSeconds": timeout}},
            {"tool": "search", "firstStep": True},
        ]
    }
    g = Gate.from_spec(spec)
    assert g is not None
    return g


def test_pointers_resolve_nested_keys_list_items_and_escapes():
    args = {"payment": {"amount": 5, "a/b": 1, "m~n": 2}, "items": [{"sku": "x"}]}
    assert resolve(args, "/payment/amount") == (True, 5)
    assert resolve(args, "/payment/a~1b") == (True, 1)
    assert resolve(args, "/payment/m~0n") == (True, 2)
    assert resolve(args, "/items/0/sku") == (True, "x")
    assert resolve(args, "/items/1/sku") == (False, None)
    assert resolve(args, "/missing") == (False, None)


@pytest.mark.parametrize(
    ("args", "needs"),
    [
        ({"amount": 101}, True),
        ({"amount": 100}, False),
        ({"amount": 99.5}, False),
        ({"amount": "5000"}, True),  # not a number: asked about, never waved through
        ({"amount": True}, True),
        ({"amount": float("nan")}, True),
        ({}, True),  # the argument missing: asked about
    ],
)
def test_above_gates_large_amounts_and_fails_closed(args, needs):
    assert gate({"argument": "/amount", "above": 100}).gated([call(args)]) == ([0] if needs else [])


def test_equals_compares_strings_and_the_json_text_of_other_values():
    g = gate({"argument": "/currency", "equals": "EUR"}, {"argument": "/live", "equals": "true"})
    assert g.gated(
        [
            call({"currency": "EUR", "live": False}),
            call({"currency": "USD", "live": False}),
            call({"currency": "USD", "live": True}),
        ]
    ) == [0, 2]
    assert Condition("/n", equals="3").holds({"n": 3})


def test_no_conditions_gates_every_call_of_the_tool_and_no_other():
    g = gate()
    assert g.gated([call({}), call({}, name="search")]) == [0]
    assert g.tools == frozenset({"pay"}) and g.timeout([call({})]) == 60
    assert Gate.from_spec({"toolPolicies": [{"tool": "search", "firstStep": True}]}) is None


def test_request_body_is_validated_field_by_field():
    assert parse_request({"decision": "approve"}) == Request("approved")
    assert parse_request({"decision": "deny", "reason": "no", "step": 2}) == Request("denied", "no", 2)
    assert "decision" in parse_request({"decision": "yes"})
    assert "reason" in parse_request({"decision": "deny", "reason": 5})
    assert "step" in parse_request({"decision": "deny", "step": True})
    assert "unknown field 'by'" in parse_request({"decision": "deny", "by": "me"})
    assert "JSON object" in parse_request(["approve"])


def test_denial_texts_tell_the_model_what_happened():
    assert "Reason: too much" in denial_text("pay", {"decision": "denied", "reason": "too much"})
    assert "nobody approved" in denial_text("pay", {"decision": "timeout"})


def test_a_condition_needs_exactly_one_test_and_a_json_pointer():
    ok = {"tool": "pay", "requireApproval": {"when": [{"argument": "/amount", "above": 100}]}}
    assert ToolPolicy.model_validate(ok).require_approval.timeout_seconds == 3600
    with pytest.raises(pydantic.ValidationError, match="exactly one of above or equals"):
        ToolPolicy.model_validate({"tool": "pay", "requireApproval": {"when": [{"argument": "/amount"}]}})
    with pytest.raises(pydantic.ValidationError, match="argument"):
        ToolPolicy.model_validate({"tool": "pay", "requireApproval": {"when": [{"argument": "amount", "above": 1}]}})
