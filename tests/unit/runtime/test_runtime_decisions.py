"""Decisions (decisions.py) and their use in the loop: per-tool policy, JSON-schema decisions,
repair turns, and budgets that end with the best answer. The model, store and tools are fakes
(the logic under test is ours); integration tests drive a real llama-server."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from agentfleet_runtime.core.budget import Prices, TreeUsage
from agentfleet_runtime.core.types import Limits, ModelReply, Observation, Status, Step, TaskRecord, ToolCall, Usage
from agentfleet_runtime.loop.agent import LoopSettings, TaskRun
from agentfleet_runtime.loop.decisions import (
    REPEATED_READ,
    DecisionSettings,
    Offer,
    ToolRule,
    decision_schema,
    offer,
    own_goal_delegation,
    portable,
    problem,
    read_decision,
    request_extras,
    resolve_sources,
    unseen_sources,
    validate,
)
from agentfleet_runtime.model.prompt import tool_schema
from agentfleet_runtime.model.wire import ContextOverflow
from agentfleet_runtime.store.tasks import Acquired
from agentfleet_runtime.tools.retrieval import PARAMETERS as SEARCH_PARAMS
from agentfleet_runtime.tools.spawn import PARAMETERS as SPAWN_PARAMS
from tests.unit.runtime.loop_store import LoopStore

SCHEMAS = [
    tool_schema("search", "Searches the manual.", SEARCH_PARAMS),
    tool_schema("delegate", "Starts sub-agents.", SPAWN_PARAMS),
]
FIRST_SEARCH = DecisionSettings(mode="JSONSchema", rules=(ToolRule("search", first_step=True),))


def step(n: int, *names: str) -> Step:
    return Step(
        n, "", [ToolCall(f"c{i}", name, {"query": "q"}) for i, name in enumerate(names)], Usage(), observations=[]
    )


# -- pure decisions ------------------------------------------------------------------------------
def test_first_step_policy_offers_only_the_first_tool_and_no_answer():
    assert offer(FIRST_SEARCH, ["search", "delegate"], []) == Offer(
        ("search",), False, "the first step must call search"
    )
    assert offer(FIRST_SEARCH, ["search", "delegate"], [step(0, "search")]) == Offer(("search", "delegate"), True, "")


def test_tools_a_task_cannot_use_are_never_offered():
    assert offer(DecisionSettings(), ["search", "delegate"], [step(0, "search")], {"delegate"}).tools == ("search",)


def test_a_step_that_only_repeats_a_search_leaves_the_model_only_the_answer():
    def calls(n: int, *queries: str, name: str = "search") -> Step:
        return Step(
            n, "", [ToolCall(f"c{i}", name, {"query": q}) for i, q in enumerate(queries)], Usage(), observations=[]
        )

    s, names, ro = DecisionSettings(), ["search", "delegate"], {"search"}
    assert offer(s, names, [calls(0, "a"), calls(1, "a")], (), ro) == Offer((), True, REPEATED_READ)
    assert offer(s, names, [calls(0, "a", "b"), calls(1, "b")], (), ro).tools == ()  # any earlier step counts
    assert offer(s, names, [calls(0, "a"), calls(1, "A lock")], (), ro).tools == ("search", "delegate")  # a new query
    assert offer(s, names, [calls(0, "a"), calls(1, "a", "c")], (), ro).tools == ("search", "delegate")  # something new
    assert offer(s, names, [calls(0, "a"), calls(1, "a")], (), ()).tools == (
        "search",
        "delegate",
    )  # not a read-only tool
    assert offer(s, names, [calls(0, "a", name="delegate"), calls(1, "a", name="delegate")], (), ro).tools == (
        "search",
        "delegate",
    )


def test_calls_per_task_take_a_tool_off_the_offer():
    s = DecisionSettings(rules=(ToolRule("search", max_calls_per_task=2),))
    assert offer(s, ["search", "delegate"], [step(0, "search")]).tools == ("search", "delegate")
    o = offer(s, ["search", "delegate"], [step(0, "search"), step(1, "search")])
    assert o.tools == ("delegate",) and "search: calls per task used up" in o.why


def _walk(node: Any):
    yield node
    if isinstance(node, dict):
        for v in node.values():
            yield from _walk(v)
    elif isinstance(node, list):
        for v in node:
            yield from _walk(v)


def test_decision_schema_is_portable_and_matches_the_offer():
    loose = tool_schema("search", "", {**SEARCH_PARAMS, "additionalProperties": {"type": "string"}, "$schema": "x"})
    schema = decision_schema({"search": loose, "delegate": SCHEMAS[1]}, Offer(("search", "delegate")))
    assert [alt["properties"]["action"]["enum"] for alt in schema["anyOf"]] == [["search"], ["delegate"], ["answer"]]
    for node in _walk(schema):
        if isinstance(node, dict):
            assert not isinstance(node.get("additionalProperties"), dict), node
            assert "$schema" not in node
    only = decision_schema({"search": loose}, Offer(("search",), may_answer=False))
    assert "anyOf" not in only and only["properties"]["action"]["enum"] == ["search"]
    assert portable({"type": "object", "properties": {"a": {"type": "string", "format": "uri"}}}) == {
        "type": "object",
        "properties": {"a": {"type": "string"}},
        "additionalProperties": False,
    }


def test_request_extras_by_mode():
    o = Offer(("search",), may_answer=False)
    json_extras = request_extras(FIRST_SEARCH, SCHEMAS, o, send_tools=False)
    assert set(json_extras) == {"response_format"} and json_extras["response_format"]["type"] == "json_schema"
    native = request_extras(DecisionSettings(), SCHEMAS, o, send_tools=True)
    assert [t["function"]["name"] for t in native["tools"]] == ["search"] and native["tool_choice"] == "required"
    assert (
        request_extras(DecisionSettings(), SCHEMAS, Offer(("search", "delegate")), send_tools=True)["tool_choice"]
        == "auto"
    )
    assert request_extras(DecisionSettings(), SCHEMAS, o, send_tools=False) == {}


def test_read_decision():
    d = read_decision('{"action": "answer", "answer": "ACCESS EXCLUSIVE", "sources": ["explicit-locking.html"]}')
    assert d.problem is None and d.calls == [] and d.content == "ACCESS EXCLUSIVE\n\nSources: explicit-locking.html"
    d = read_decision('{"action": "search", "arguments": {"query": "VACUUM FULL lock"}}')
    assert d.problem is None and d.calls == [ToolCall("json-0", "search", {"query": "VACUUM FULL lock"})]
    assert read_decision('{"action": "search", "query": "flat form"}').calls[0].arguments == {"query": "flat form"}
    assert "not a JSON object" in read_decision('{"action": "search", "argu').problem
    assert "non-empty" in read_decision('{"action": "answer", "answer": " ", "sources": []}').problem


def test_validate_names_the_field_and_the_fix():
    assert validate({"query": "x"}, SEARCH_PARAMS) == []
    assert validate({}, SEARCH_PARAMS) == ["arguments.query is required"]
    assert validate({"query": "  "}, SEARCH_PARAMS) == ["arguments.query must not be empty"]
    assert validate({"query": 3}, SEARCH_PARAMS) == ["arguments.query must be a string, got 3"]
    assert validate({"query": "x", "top_k": 99}, SEARCH_PARAMS) == ["arguments.top_k must be at most 50"]
    assert validate({"goals": "one"}, SPAWN_PARAMS) == ['arguments.goals must be an array, got "one"']


def test_problem_covers_unknown_tools_policy_and_arguments():
    o = Offer(("search",), may_answer=False, why="the first step must call search")
    assert problem([], "42", o, SCHEMAS) == "you may not answer yet: the first step must call search"
    assert "no tool 'browse'" in problem([ToolCall("a", "browse", {})], "", o, SCHEMAS)
    assert "delegate cannot be called now" in problem([ToolCall("a", "delegate", {"goals": ["x"]})], "", o, SCHEMAS)
    assert problem([ToolCall("a", "search", {"q": "x"})], "", o, SCHEMAS) == "search.arguments.query is required"
    assert problem([ToolCall("a", "search", {"query": "x"})], "", o, SCHEMAS) is None


def test_from_spec_reads_the_api_shape():
    s = DecisionSettings.from_spec(
        {
            "mode": "JSONSchema",
            "repairAttempts": 2,
            "toolPolicies": [{"tool": "search", "firstStep": True, "maxCallsPerTask": 3}],
        }
    )
    assert s == DecisionSettings("JSONSchema", 2, (ToolRule("search", True, 3),))
    assert DecisionSettings.from_spec(None) == DecisionSettings()


# -- the loop with these decisions ---------------------------------------------------------------
class ScriptedModel:
    """Replies from a list, in order; records every request."""

    def __init__(self, replies: list[str | ModelReply | Exception]) -> None:
        self.replies = list(replies)
        self.requests: list[Any] = []

    async def complete(self, request):
        self.requests.append(request)
        r = self.replies.pop(0)
        if isinstance(r, Exception):
            raise r
        return r if isinstance(r, ModelReply) else ModelReply(content=r, usage=Usage(100, 10, calls=1))


class Tools:
    names = ["search", "delegate"]
    spawners = frozenset({"delegate"})
    read_only = frozenset({"search"})
    cite_sources: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.calls: list[ToolCall] = []

    def schemas(self):
        return SCHEMAS

    def acts(self, calls):
        return False

    async def run_step(self, task, n, calls, deadline):
        self.calls += calls
        return [
            Observation(
                c.id,
                c.name,
                True,
                f"[1] (explicit-locking.html, score 0.9)\nVACUUM FULL takes an ACCESS EXCLUSIVE lock ({n})",
            )
            for c in calls
        ]


def run_task(
    model,
    settings: LoopSettings,
    limits: Limits | None = None,
    *,
    goal: str = "Which lock does VACUUM FULL take?",
    tools=None,
):
    limits = limits or Limits()
    now = time.time()
    rec = TaskRecord(
        id="t1", goal=goal, status=Status.RUNNING, limits=limits, created_at=now, deadline=now + 60, root="t1"
    )
    acquired = Acquired(record=rec, steps=[], root_limits=limits, root_deadline=rec.deadline, tree=TreeUsage())
    store, tools = LoopStore(), tools or Tools()
    task_run = TaskRun(
        acquired, lease="L", msg_id="m", store=store, model=model, tools=tools, prices=Prices(), settings=settings
    )
    outcome = asyncio.run(asyncio.wait_for(task_run.execute(), 5))
    return outcome, store.finished, tools, task_run


SEARCH = '{"action": "search", "arguments": {"query": "VACUUM FULL lock"}}'
ANSWER = '{"action": "answer", "answer": "ACCESS EXCLUSIVE", "sources": ["explicit-locking.html"]}'


def test_json_mode_searches_then_answers_with_its_source():
    model = ScriptedModel([SEARCH, ANSWER])
    outcome, finished, tools, task_run = run_task(
        model, LoopSettings("Answer from the manual.", decisions=FIRST_SEARCH)
    )
    assert outcome == (Status.DONE, "final_answer")
    assert finished["answer"] == "ACCESS EXCLUSIVE\n\nSources: explicit-locking.html"
    assert [c.name for c in tools.calls] == ["search"]
    first, second = model.requests
    assert first.tools == [] and first.response_format["json_schema"]["schema"]["properties"]["action"]["enum"] == [
        "search"
    ]
    assert [a["properties"]["action"]["enum"][0] for a in second.response_format["json_schema"]["schema"]["anyOf"]] == [
        "search",
        "delegate",
        "answer",
    ]
    assert '"action": "answer"' in first.messages[0]["content"]  # the protocol is in the system prompt
    # The history shows the decision as the model wrote it and the result as a user turn.
    assert second.messages[2] == {"role": "assistant", "content": SEARCH}
    assert second.messages[3]["role"] == "user" and "ACCESS EXCLUSIVE lock (0)" in second.messages[3]["content"]


def test_a_reply_that_fails_validation_gets_a_repair_turn():
    bad = '{"action": "search", "arguments": {"q": "VACUUM"}}'
    model = ScriptedModel([bad, SEARCH, ANSWER])
    outcome, finished, tools, task_run = run_task(model, LoopSettings("s", decisions=FIRST_SEARCH))
    assert outcome == (Status.DONE, "final_answer")
    assert [c.arguments for c in tools.calls] == [
        {"query": "VACUUM FULL lock"}
    ]  # the repaired call ran, the bad one never did
    repair = model.requests[1].messages
    assert repair[-2] == {"role": "assistant", "content": bad}
    assert "search.arguments.query is required" in repair[-1]["content"]
    # The repair turn is transient: the next step's prompt holds only the repaired decision.
    assert bad not in json.dumps(model.requests[2].messages)
    assert task_run.steps[0].usage == Usage(200, 20, calls=2)  # both calls are paid for, and counted


def test_native_mode_policy_forces_the_first_tool_and_repairs_a_direct_answer():
    settings = LoopSettings(
        "s", tool_calling="native", decisions=DecisionSettings(rules=(ToolRule("search", first_step=True),))
    )
    call = ModelReply(content="", tool_calls=(ToolCall("c1", "search", {"query": "lock"}),), usage=Usage(1, 1))
    model = ScriptedModel(["It is SHARE lock.", call, "ACCESS EXCLUSIVE"])
    outcome, finished, tools, _ = run_task(model, settings)
    assert outcome == (Status.DONE, "final_answer")
    assert finished["answer"] == "ACCESS EXCLUSIVE\n\nSources: explicit-locking.html"
    first = model.requests[0]
    assert [t["function"]["name"] for t in first.tools] == ["search"] and first.tool_choice == "required"
    assert "you may not answer yet" in model.requests[1].messages[-1]["content"]
    assert model.requests[2].tool_choice == "auto" and len(model.requests[2].tools) == 2


def test_repairs_are_bounded_then_the_reply_is_taken_as_it_is():
    model = ScriptedModel(["no json", "still no json"])
    settings = LoopSettings("s", decisions=DecisionSettings(mode="JSONSchema", repair_attempts=1))
    outcome, finished, tools, _ = run_task(model, settings)
    assert outcome == (Status.DONE, "final_answer") and finished["answer"] == "still no json"
    assert len(model.requests) == 2 and tools.calls == []


def test_a_cut_off_tool_decision_is_never_the_tasks_answer():
    # Qwen2.5-Coder-0.5B pasted a whole observation into its search query until max_tokens cut
    # the JSON; the repair failed the same way and the raw decision became the stored answer.
    cut = (
        '{"action":"search","arguments":{"query":"Observation from search:\\n[1] (sql-explain.html, score '
        "0.03)\\nKeep in"
    )
    model = ScriptedModel([SEARCH, cut, cut])
    settings = LoopSettings("s", decisions=DecisionSettings(mode="JSONSchema", repair_attempts=1))
    outcome, finished, tools, _ = run_task(model, settings)
    assert outcome == (Status.DONE, "final_answer") and finished["answer"] == ""
    assert read_decision(cut).problem is not None and read_decision(cut).content == ""
    # Plain prose and a cut-off answer still end as what they say.
    assert read_decision("It takes ACCESS EXCLUSIVE.").content == "It takes ACCESS EXCLUSIVE."
    assert read_decision('{"action": "answer", "answer": "ACCESS EXCL').content == "ACCESS EXCL"


def test_a_model_that_repeats_one_search_is_made_to_answer_instead_of_looping_to_the_step_budget():
    model = ScriptedModel([SEARCH, SEARCH, ANSWER])
    outcome, finished, tools, _ = run_task(model, LoopSettings("s", decisions=FIRST_SEARCH), Limits(max_steps=24))
    assert finished["reason"] == "final_answer" and "ACCESS EXCLUSIVE" in finished["answer"] and len(tools.calls) == 2
    third = model.requests[2].response_format["json_schema"]["schema"]
    assert third["properties"]["action"]["enum"] == ["answer"]  # the grammar leaves only the answer


def test_an_answer_citing_passage_numbers_names_the_passages_sources():
    cited = '{"action": "answer", "answer": "ACCESS EXCLUSIVE", "sources": ["[1]"]}'
    model = ScriptedModel([SEARCH, cited])
    outcome, finished, tools, _ = run_task(model, LoopSettings("s", decisions=FIRST_SEARCH))
    assert finished["answer"] == "ACCESS EXCLUSIVE\n\nSources: explicit-locking.html"
    assert read_decision(cited).content == "ACCESS EXCLUSIVE\n\nSources: [1]"  # no search: nothing to resolve
    assert resolve_sources(["2", "[1]", "a.html", "[9]", 3], {1: "x.html", 2: "y.html"}) == [
        "y.html",
        "x.html",
        "a.html",
        "[9]",
        3,
    ]


def test_a_copied_passage_head_names_its_source():
    numbered = {1: "x.html", 2: "y.html"}
    # The head line as the search showed it, or its source and score in brackets: the source.
    got = resolve_sources(
        ["[2] (y.html, score 0.673)", "[transaction-iso.html, score 0.506]", "(z.html, score 0.1)"], numbered
    )
    assert got == ["y.html", "transaction-iso.html", "z.html"]
    assert resolve_sources(["[3] (q.html)", "a.html [1]"], numbered) == ["q.html", "a.html [1]"]


def test_sources_no_tool_output_names_are_unseen():
    seen = ["[1] (x.html, score 0.9)\nfoo", "sub-agent: bar\n\nSources: w.html"]
    assert unseen_sources(["x.html", "w.html"], seen, {1: "x.html"}) == []
    # A passage number left unresolved (past the last passage shown) and a document never retrieved.
    assert unseen_sources(["x.html", "[9]", "never.html", "[9]"], seen, {1: "x.html"}) == ["[9]", "never.html"]
    assert unseen_sources(["anything.html"], [], {}) == []  # nothing seen yet: nothing to check


def test_an_answer_citing_a_passage_it_never_saw_gets_a_repair_turn():
    bad = '{"action": "answer", "answer": "ACCESS EXCLUSIVE", "sources": ["explicit-locking.html", "[9]"]}'
    model = ScriptedModel([SEARCH, bad, ANSWER])
    outcome, finished, tools, _ = run_task(model, LoopSettings("s", decisions=FIRST_SEARCH))
    assert finished["answer"] == "ACCESS EXCLUSIVE\n\nSources: explicit-locking.html" and len(model.requests) == 3
    repair = model.requests[2].messages[-1]["content"]
    assert "[9] is not one" in repair and "explicit-locking.html" in repair
    # No repair left: the answer stands as the model wrote it (the scorer judges its citations).
    model = ScriptedModel([SEARCH, bad])
    no_repair = DecisionSettings(mode="JSONSchema", repair_attempts=0, rules=FIRST_SEARCH.rules)
    outcome, finished, tools, _ = run_task(model, LoopSettings("s", decisions=no_repair))
    assert finished["reason"] == "final_answer" and finished["answer"].endswith("Sources: explicit-locking.html, [9]")


def test_step_budget_ends_with_the_reason_and_the_best_answer_so_far():
    model = ScriptedModel([SEARCH, SEARCH.replace("lock", "locks")])
    outcome, finished, tools, _ = run_task(model, LoopSettings("s", decisions=FIRST_SEARCH), Limits(max_steps=2))
    assert outcome == (Status.DONE, "max_steps")
    # Not the JSON of the last search call: the last passage it found.
    assert finished["answer"].startswith("(no final answer; last search result) [1] (explicit-locking.html")
    assert "ACCESS EXCLUSIVE lock (1)" in finished["answer"]


def test_a_history_past_the_served_context_ends_with_the_reason_and_the_best_answer_so_far():
    # Seen with the 0.5B on llama-server (8,192 tokens): at step 7 the prompt held 8,488, and the
    # worker retried the same prompt until the task was dead-lettered with no answer.
    overflow = ContextOverflow("the prompt (~8488 tokens) leaves 0 of the served context's 8192 tokens for the answer")
    model = ScriptedModel([SEARCH, SEARCH.replace("lock", "locks"), overflow])
    outcome, finished, tools, _ = run_task(model, LoopSettings("s", decisions=FIRST_SEARCH))
    assert outcome == (Status.DONE, "max_context")
    assert finished["answer"].startswith("(no final answer; last search result) [1] (explicit-locking.html")
    assert len(model.requests) == 3  # the call that cannot fit is not sent again


def test_a_sub_agent_at_the_depth_limit_is_not_offered_the_spawn_tool():
    model = ScriptedModel([SEARCH, ANSWER])
    now = time.time()
    limits = Limits(max_depth=1)
    rec = TaskRecord(
        id="t1.0.0.0",
        goal="g",
        status=Status.RUNNING,
        limits=limits,
        created_at=now,
        deadline=now + 60,
        root="t1",
        parent="t1",
        depth=1,
    )
    acquired = Acquired(record=rec, steps=[], root_limits=limits, root_deadline=rec.deadline, tree=TreeUsage())
    run = TaskRun(
        acquired,
        lease="L",
        msg_id="m",
        store=LoopStore(),
        model=model,
        tools=Tools(),
        prices=Prices(),
        settings=LoopSettings("s", decisions=FIRST_SEARCH),
    )
    assert asyncio.run(run.execute()) == (Status.DONE, "final_answer")
    later = model.requests[1].response_format["json_schema"]["schema"]["anyOf"]
    assert [a["properties"]["action"]["enum"][0] for a in later] == ["search", "answer"]


def test_delegating_the_tasks_own_question_gets_a_repair_turn_and_never_runs():
    """Issue 38: the 1.5B handed the whole question to a sub-agent (defaults, unanswerable questions),
    which searched it again one level down; on a question the manual does not answer each level fanned out."""
    whole = '{"action": "delegate", "arguments": {"goals": ["which lock does VACUUM FULL take"]}}'
    model = ScriptedModel([SEARCH, whole, ANSWER])
    outcome, finished, tools, task_run = run_task(model, LoopSettings("s", decisions=FIRST_SEARCH))
    assert outcome == (Status.DONE, "final_answer") and finished["answer"].startswith("ACCESS EXCLUSIVE")
    assert [c.name for c in tools.calls] == ["search"]  # no sub-agent ran
    assert "delegate was given the whole question" in model.requests[2].messages[-1]["content"]


def test_own_goal_delegation_is_the_whole_question_only():
    goal = "Which lock does VACUUM FULL take?"
    spawn = ["delegate"]

    def call(args: dict) -> list[ToolCall]:
        return [ToolCall("c", "delegate", args)]

    assert own_goal_delegation(call({"goals": ["  which LOCK does vacuum full take"]}), spawn, goal)
    assert own_goal_delegation(call({"goal": goal}), spawn, goal)
    part = "Which lock does VACUUM take?"
    assert own_goal_delegation(call({"goals": [part, "Which lock does VACUUM FULL take?!"]}), spawn, goal)
    # parts of the question, another tool, or no spawn tool at all are fine
    both = [part, "Which lock does VACUUM FULL take, and why?"]
    assert own_goal_delegation(call({"goals": both}), spawn, goal) is None
    assert own_goal_delegation([ToolCall("c", "search", {"goals": [goal]})], spawn, goal) is None
    assert own_goal_delegation(call({"goals": [goal]}), [], goal) is None


def test_the_chat_body_carries_tool_choice_and_the_response_format():
    from agentfleet_runtime.model.client import ModelRequest, OpenAIChatClient

    client = OpenAIChatClient("http://127.0.0.1:9/v1", "m")
    rf = request_extras(FIRST_SEARCH, SCHEMAS, Offer(("search",), may_answer=False), send_tools=False)[
        "response_format"
    ]
    body = client._body(ModelRequest(messages=[], response_format=rf))
    assert body["response_format"] == rf and "tools" not in body
    body = client._body(ModelRequest(messages=[], tools=SCHEMAS[:1], tool_choice="required"))
    assert body["tools"] == SCHEMAS[:1] and body["tool_choice"] == "required" and "response_format" not in body
    assert client._body(ModelRequest(messages=[], tools=SCHEMAS))["tool_choice"] == "auto"


def test_tool_calls_mode_keeps_the_text_fallback_and_validates_it():
    # A model that writes its call as <tool_call> text (Qwen/Hermes templates) in ToolCalls mode:
    # the fallback reads it, the policy and the schema check it, a repair fixes a bad argument.
    settings = LoopSettings(
        "s", tool_calling="auto", decisions=DecisionSettings(rules=(ToolRule("search", first_step=True),))
    )
    bad = '<tool_call>{"name": "search", "arguments": {"text": "lock"}}</tool_call>'
    good = '<tool_call>{"name": "search", "arguments": {"query": "VACUUM FULL lock"}}</tool_call>'
    model = ScriptedModel([bad, good, "Final Answer: ACCESS EXCLUSIVE"])
    outcome, finished, tools, _ = run_task(model, settings)
    assert outcome == (Status.DONE, "final_answer")
    assert finished["answer"] == "ACCESS EXCLUSIVE\n\nSources: explicit-locking.html"
    assert [c.arguments for c in tools.calls] == [{"query": "VACUUM FULL lock"}]
    assert "search.arguments.query is required" in model.requests[1].messages[-1]["content"]
