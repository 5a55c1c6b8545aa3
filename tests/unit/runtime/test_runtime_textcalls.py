"""Text fallback: tool calls written in plain text by models without function calling."""

from __future__ import annotations

from agentfleet_runtime.model.textcalls import coerce_arguments, parse_text_reply

TOOLS = ["search", "spawn"]


def test_plain_text_is_the_answer():
    assert parse_text_reply("Paris is the capital.", TOOLS) == ("Paris is the capital.", [])


def test_tagged_call_hermes_style():
    content, calls = parse_text_reply(
        'Let me look.\n<tool_call>{"name": "search", "arguments": {"query": "capital"}}</tool_call>', TOOLS
    )
    assert content == "Let me look."
    assert [(c.name, c.arguments) for c in calls] == [("search", {"query": "capital"})]


def test_several_tagged_calls_and_unclosed_tag():
    text = (
        '<tool_call>{"name": "search", "arguments": {"query": "a"}}</tool_call>\n<tool_call>{"name": "search", '
        '"arguments": {"query": "b"}}'
    )
    _, calls = parse_text_reply(text, TOOLS)
    assert [c.arguments["query"] for c in calls] == ["a", "b"]
    assert [c.id for c in calls] == ["text-0", "text-1"]


def test_tagged_unknown_tool_is_still_a_call_so_the_model_learns():
    _, calls = parse_text_reply('<tool_call>{"name": "browse", "arguments": {}}</tool_call>', TOOLS)
    assert calls[0].name == "browse"


def test_react_action():
    text = 'Thought: I should search.\nAction: search\nAction Input: {"query": "x"}\nObservation: ...'
    content, calls = parse_text_reply(text, TOOLS)
    assert content == "Thought: I should search."
    assert calls[0].name == "search" and calls[0].arguments == {"query": "x"}


def test_react_action_with_plain_input():
    _, calls = parse_text_reply("Action: search\nAction Input: weather in Oslo", TOOLS)
    assert calls[0].arguments == {"input": "weather in Oslo"}


def test_final_answer_marker_wins_when_first():
    content, calls = parse_text_reply("Final Answer: 42\nAction: search", TOOLS)
    assert (content, calls) == ("42\nAction: search", [])


def test_bare_json_needs_a_known_tool():
    _, calls = parse_text_reply('```json\n{"tool": "Search", "args": {"query": "q"}}\n```', TOOLS)
    assert calls[0].name == "search"  # case-insensitive match to the real name
    content, calls = parse_text_reply('{"name": "Alice", "age": 3}', TOOLS)
    assert calls == [] and content == '{"name": "Alice", "age": 3}'


def test_fenced_flat_call_keeps_its_arguments():
    # Qwen2.5-Coder on vLLM 0.32 with tool_choice auto: a fenced object, arguments beside the name
    # (tests/integration/engines/test_vllm_toolcalls_it.py meets it live).
    text = '```json\n{"name": "search", "query": "index types"}\n```'
    content, calls = parse_text_reply(text, TOOLS)
    assert content == "" and [(c.name, c.arguments) for c in calls] == [("search", {"query": "index types"})]
    _, calls = parse_text_reply('{"name": "search"}', TOOLS)
    assert calls[0].arguments == {}


def test_openai_shape_written_as_text_with_string_arguments():
    _, calls = parse_text_reply('{"function": {"name": "search", "arguments": "{\\"query\\": \\"z\\"}"}}', TOOLS)
    assert calls[0].arguments == {"query": "z"}


def test_json_list_of_calls():
    _, calls = parse_text_reply(
        '[{"name": "search", "arguments": {"query": "a"}}, {"name": "spawn", "arguments": {"goals": ["x"]}}]', TOOLS
    )
    assert [c.name for c in calls] == ["search", "spawn"]


def test_broken_json_is_text():
    assert parse_text_reply('<tool_call>{"name": "search", "arguments": {</tool_call>', TOOLS)[1] == []


def test_coerce_arguments():
    assert coerce_arguments('{"a": 1}') == {"a": 1}
    assert coerce_arguments("not json") == {"input": "not json"}
    assert coerce_arguments("[1, 2]") == {"input": [1, 2]}
    assert coerce_arguments(None) == {}
    assert coerce_arguments("") == {}


def test_prose_with_colons_but_no_marker_is_the_answer():
    # The quick check (no tag, Action, answer or JSON): the text is the answer, stripped.
    assert parse_text_reply("  done: 3 items after 2 steps | note: fine  ", TOOLS) == (
        "done: 3 items after 2 steps | note: fine",
        [],
    )


def test_markers_are_found_in_any_case():
    assert parse_text_reply("Thinking.\nFINAL ANSWER: 42", TOOLS) == ("42", [])
    assert parse_text_reply("Thinking.\nAnſwer: 42", TOOLS) == ("42", [])  # long s: IGNORECASE matches it
    _, calls = parse_text_reply('<TOOL_CALL>{"name": "search", "arguments": {"query": "q"}}</TOOL_CALL>', TOOLS)
    assert [c.name for c in calls] == ["search"]
    _, calls = parse_text_reply("ACTION: search\nACTION INPUT: q", TOOLS)
    assert [(c.name, c.arguments) for c in calls] == [("search", {"input": "q"})]
