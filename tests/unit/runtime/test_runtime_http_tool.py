"""HTTP tool settings that need no network: headers from the mounted Secret, schema."""

from __future__ import annotations

import json

import pytest

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
