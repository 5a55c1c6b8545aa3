"""Model seam: parsing chat completions, backoff, and the scripted model's behaviour."""

from __future__ import annotations

import asyncio
import json
import random

import pytest

from agentfleet_runtime.core.types import Usage
from agentfleet_runtime.model.client import ModelError, ModelRequest, backoff_delay, parse_chat_completion
from agentfleet_runtime.testing.scripted_model import (
    ScriptedClient,
    ScriptedModel,
    directives,
    jittered,
    strip_directives,
)
from agentfleet_runtime.tools.fanout import child_id, goals_of


def test_parse_native_tool_calls_and_usage():
    body = {
        "model": "m",
        "choices": [
            {
                "message": {
                    "content": None,
                    "tool_calls": [
                        {"id": "c1", "function": {"name": "search", "arguments": '{"query": "x"}'}},
                        {"function": {}},
                    ],
                },
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3},
    }
    r = parse_chat_completion(body)
    assert r.content == "" and [(c.id, c.name, c.arguments) for c in r.tool_calls] == [("c1", "search", {"query": "x"})]
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.finish_reason, r.model) == (12, 3, "tool_calls", "m")
    assert r.usage.calls == 1  # one reply is one model call, whatever its tokens


def test_parse_tolerates_missing_usage_and_refuses_no_choices():
    assert parse_chat_completion({"choices": [{"message": {"content": "hi"}}]}).usage == Usage(0, 0, calls=1)
    with pytest.raises(ModelError):
        parse_chat_completion({"choices": []})


def test_full_jitter_backoff_is_bounded():
    rng = random.Random(1)
    for attempt in range(10):
        d = backoff_delay(attempt, base=0.2, cap=5.0, rng=rng)
        assert 0 <= d <= min(5.0, 0.2 * 2**attempt)


def msgs(goal, assistant_turns=0):
    m = [{"role": "system", "content": "s"}, {"role": "user", "content": goal}]
    for i in range(assistant_turns):
        m += [
            {"role": "assistant", "content": None, "tool_calls": []},
            {"role": "tool", "tool_call_id": "x", "content": f"obs{i}"},
        ]
    return m


def test_scripted_model_directives():
    sm = ScriptedModel()
    assert directives("do it #steps=3 #tool=t") == {"steps": "3", "tool": "t"}
    assert strip_directives("do  it #steps=3 now") == "do it now"
    p0 = sm.reply(msgs("x #steps=3 #tool=t #calls=2"))
    assert [c["name"] for c in p0.tool_calls] == ["t", "t"] and p0.tool_calls[0]["arguments"] == {"n": 0}
    p2 = sm.reply(msgs("x #steps=3 #tool=t #calls=2", 2))
    assert p2.tool_calls == [] and p2.content.startswith("done: x after 3 steps") and "obs1" in p2.content


def test_scripted_model_faults_per_turn_and_spawn():
    sm = ScriptedModel()
    g = "y #fail=2"
    assert [sm.reply(msgs(g)).status for _ in range(3)] == [500, 500, 200]
    assert sm.reply(msgs("z #hang=3 #latency=0.1")).delay == pytest.approx(3.1)
    assert sm.reply(msgs("z #hang=3 #latency=0.1")).delay == pytest.approx(0.1)
    sp = sm.reply(msgs("fan #spawn=2 #child_latency=1"))
    assert sp.tool_calls[0]["arguments"]["goals"] == ["branch 0 of fan #latency=1", "branch 1 of fan #latency=1"]
    assert sm.reply(msgs("fan #spawn=2", 1)).content.startswith("done")


def test_scripted_latency_jitter_is_a_fixed_draw_per_call():
    # Any worker, and the HTTP server, draw the same latency for the same call.
    g = "job 7 #latency=0.2 #jitter=0.25"
    assert (
        ScriptedModel().reply(msgs(g, 3)).delay == ScriptedModel().reply(msgs(g, 3)).delay == jittered(0.2, 0.25, g, 3)
    )
    draws = [jittered(0.2, 0.25, f"job {i}", t) for i in range(500) for t in range(10)]
    assert all(0.15 <= d <= 0.25 for d in draws)
    assert sum(draws) / len(draws) == pytest.approx(0.2, abs=0.002)
    # The turns of one goal are independent draws (a linear hash made them move together).
    sums = [sum(jittered(0.2, 0.25, f"job {i}", t) for t in range(15)) for i in range(500)]
    spread = (sum((x - 3.0) ** 2 for x in sums) / len(sums)) ** 0.5
    assert spread == pytest.approx(0.2 * 0.25 / 3**0.5 * 15**0.5, rel=0.15)
    assert ScriptedModel().reply(msgs("job 7 #latency=0.2")).delay == 0.2  # no directive: every call alike


def test_scripted_rules_and_text_calls():
    sm = ScriptedModel(
        rules=[
            {
                "match": "weather",
                "turns": [{"tool_calls": [{"name": "w", "arguments": {"city": "Oslo"}}]}, {"content": "Rain."}],
            }
        ]
    )
    plan = sm.reply(msgs("weather in Oslo #text=1"))
    body = sm.body(plan, msgs("weather in Oslo #text=1"))
    assert (
        "<tool_call>" in body["choices"][0]["message"]["content"] and "tool_calls" not in body["choices"][0]["message"]
    )
    assert sm.reply(msgs("weather in Oslo", 1)).content == "Rain."


def test_scripted_client_round_trip():
    reply = asyncio.run(ScriptedClient().complete(ModelRequest(messages=msgs("q #steps=2 #tool=echo"))))
    assert reply.tool_calls[0].name == "echo" and reply.usage.prompt_tokens > 0
    assert json.dumps(reply.tool_calls[0].arguments) == '{"n": 0}'


def test_fanout_helpers():
    assert goals_of({"goals": ["a", " ", {"goal": "b"}]}) == ["a", "b"]
    assert goals_of({"goal": "x"}) == ["x"] and goals_of({"input": "y"}) == ["y"] and goals_of({"goals": 3}) == []
    assert child_id("p", 2, 1, 0) == "p.2.1.0"
