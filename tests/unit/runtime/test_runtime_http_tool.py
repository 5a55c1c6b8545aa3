"""HTTP tool settings that need no network: headers from the mounted Secret, schema."""

from __future__ import annotations

import json

import pytest

from agentfleet_runtime.core.types import Step, ToolCall, Usage
from agentfleet_runtime.loop.decisions import REPEATED_READ, DecisionSettings, Offer, offer
from agentfleet_runtime.tools import ToolBox
from agentfleet_runtime.tools.http import HTTPTool, load_headers


def test_headers_come_from_a_file_named_like_the_tool(tmp_path):
    (tmp_path / "tickets").write_text(json.dumps({"Authorization": "Bearer x", "X-N": 3}))
    assert load_headers(str(tmp_path), "tickets") == {"Authorization": "Bearer x", "X-N": "3"}
    assert load_headers(str(tmp_path), "other") == {}
    assert load_headers(None, "tickets") == {}
    (tmp_path / "bad").write_text("[1]")
    with pytest.raises(ValueError, match="JSON object"):
        load_headers(str(tmp_path), "bad")


def test_schema_defaults_to_an_open_object():
    t = HTTPTool("t", "http://x/y", description="does y", side_effects=True)
    fn = t.schema()["function"]
    assert fn["name"] == "t" and fn["description"] == "does y" and fn["parameters"]["type"] == "object"


def test_a_lookup_without_side_effects_is_a_read_for_the_repeat_guard():
    lookup, order = HTTPTool("inventory", "http://x/inv"), HTTPTool("order", "http://x/order", side_effects=True)
    assert lookup.read_only and not order.read_only
    box = ToolBox([lookup, order])
    assert box.read_only == {"inventory"}
    same = [Step(i, "", [ToolCall(f"c{i}", "inventory", {"sku": "ZX-9"})], Usage(), observations=[]) for i in range(2)]
    # The identical lookup repeated: the model may only answer now.
    assert offer(DecisionSettings(), box.names, same, (), box.read_only) == Offer((), True, REPEATED_READ)
