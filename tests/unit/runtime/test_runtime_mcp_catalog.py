"""What an MCP server's listing becomes in front of the model: names, allow list, schema subset,
caps; and how the ToolBox takes a source's tools and their changes."""

from __future__ import annotations

import re
from types import SimpleNamespace

from agentfleet_runtime.model.prompt import tool_schema
from agentfleet_runtime.tools import ToolBox
from agentfleet_runtime.tools.mcp_catalog import (
    MAX_DESCRIPTION_CHARS,
    MAX_SCHEMA_CHARS,
    allowed,
    catalog,
    result_text,
    tool_name,
)

TOOL_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]{0,63}$")  # the spec's tool policies and every engine accept these


def test_names_are_prefixed_and_kept_to_what_engines_accept():
    assert tool_name("clock", "get_current_time") == "clock_get_current_time"
    assert tool_name("fs", "read file.txt/v2") == "fs_read_file_txt_v2"
    long_a, long_b = tool_name("srv", "x" * 100 + "a"), tool_name("srv", "x" * 100 + "b")
    assert len(long_a) == 64 and long_a != long_b and long_a.startswith("srv_xxx")
    assert all(TOOL_NAME.match(n) for n in (long_a, tool_name("s", "ünïcode tool"), tool_name("s", "..")))


def test_allow_list_empty_admits_all_else_exact_names():
    assert allowed("anything", [])
    assert allowed("git_log", ["git_log", "git_show"])
    assert not allowed("git_commit", ["git_log", "git_show"])
    assert not allowed("git_lo", ["git_log"])  # exact names, not prefixes


def test_catalog_filters_cuts_schemas_and_marks_side_effects():
    listed = [
        (
            "read",
            "Reads.\x07",
            {
                "type": "object",
                "properties": {"p": {"type": "string", "format": "uri", "pattern": "^x"}},
                "additionalProperties": {"type": "string"},
            },
        ),
        ("write", "W" * 5000, None),
        ("delete", "Deletes.", {"type": "object"}),
        ("bad_root", "Array root.", {"type": "array"}),
    ]
    entries, skipped = catalog("fs", listed, allow=["read", "write", "bad_root"], read_only=["read"])
    by = {e.remote: e for e in entries}
    assert list(by) == ["read", "write", "bad_root"] and skipped == ["delete: not in allowTools"]
    # Portable subset: formats and patterns dropped, objects closed (never an object-valued additionalProperties).
    assert by["read"].parameters == {
        "type": "object",
        "properties": {"p": {"type": "string"}},
        "additionalProperties": False,
    }
    assert by["read"].description == "Reads." and not by["read"].side_effects
    assert by["write"].side_effects and len(by["write"].description) <= MAX_DESCRIPTION_CHARS + 6
    assert by["write"].parameters["type"] == "object" and by["bad_root"].parameters["type"] == "object"


def test_catalog_caps_the_count_and_the_schema_size_and_never_shadows_a_name():
    huge = {
        "type": "object",
        "properties": {f"p{i}": {"type": "string", "description": "d" * 100} for i in range(MAX_SCHEMA_CHARS // 100)},
    }
    listed = [("a", "", None), ("b", "", huge), ("c", "", None), ("d", "", None)]
    entries, skipped = catalog("s", listed, max_tools=2, taken=["s_c"])
    assert [e.name for e in entries] == ["s_a", "s_d"]
    assert skipped == [f"b: input schema over {MAX_SCHEMA_CHARS} characters", "c: its name s_c is taken"]
    entries, skipped = catalog("s", [("a", "", None), ("c", "", None), ("d", "", None)], max_tools=2)
    assert [e.name for e in entries] == ["s_a", "s_c"] and skipped == ["d: past maxTools (2)"]


def block(kind, **kw):
    return SimpleNamespace(type=kind, **kw)


def test_result_text_keeps_text_names_other_blocks_and_stops_at_the_limit():
    content = [
        block("text", text="hello"),
        block("image", mime_type="image/png"),
        block("resource_link", uri="file:///x"),
    ]
    assert result_text(content, None, 1000) == "hello\n[image content (image/png) not shown]\n[resource link file:///x]"
    assert result_text([], {"a": 1}, 1000) == '{"a": 1}'
    many = [block("text", text="x" * 100) for _ in range(1000)]
    assert len(result_text(many, None, 250)) < 400


class Source:
    """A source of tools as the ToolBox sees an MCP server (provides_tools, tools, on_change)."""

    provides_tools = True

    def __init__(self, *names):
        self.tools = [self.tool(n) for n in names]
        self.on_change = None

    def tool(self, name):
        return SimpleNamespace(
            name=name,
            server=self,
            side_effects=True,
            read_only=False,
            timeout=1.0,
            schema=lambda: tool_schema(name, "", None),
        )

    def relist(self, *names):
        self.tools = [self.tool(n) for n in names]
        self.on_change()


class Static:
    name, description, timeout, side_effects = "search", "", 1.0, False

    def schema(self):
        return tool_schema(self.name, "", None)


def test_toolbox_takes_a_sources_tools_and_their_changes():
    src = Source("m_a")
    box = ToolBox([Static(), src])
    assert box.names == ["search", "m_a"] and box.acts([SimpleNamespace(name="m_a")])
    assert src.taken() == ["search"]  # what the source must not shadow
    src.relist("m_a", "m_b")
    assert box.names == ["search", "m_a", "m_b"] and set(box.breakers) == {"search", "m_a", "m_b"}
    assert [s["function"]["name"] for s in box.schemas()] == ["search", "m_a", "m_b"]
    src.relist("m_b")
    assert box.names == ["search", "m_b"]
