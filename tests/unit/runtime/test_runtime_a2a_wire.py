"""A2A's pure parts (agentfleet_runtime.server.a2a_wire): the state mapping, the card, a task and
its events as A2A's messages (checked against a2a-sdk's own protobuf types), requests checked, and
spec.a2a rendered into the runtime config."""

from __future__ import annotations

import pytest
from a2a.types.a2a_pb2 import AgentCard, StreamResponse, Task
from agentfleet_contract.agentfleet import AgentFleet
from agentfleet_contract.runtime_config import ModelTarget, PodLayout, RuntimeConfig, runtime_config
from google.protobuf.json_format import ParseDict
from pydantic import ValidationError

from agentfleet_runtime.core.types import Limits, Status, Step, StopReason, TaskRecord, Usage
from agentfleet_runtime.server import a2a_wire as w

# Every status and reason the store writes, and the A2A state it must be: one table, checked whole.
STATES = [
    (Status.QUEUED, "", w.SUBMITTED),
    (Status.RUNNING, "", w.WORKING),
    (Status.AWAITING_APPROVAL, "", w.AUTH_REQUIRED),
    (Status.DONE, StopReason.FINAL_ANSWER, w.COMPLETED),
    (Status.DONE, StopReason.MAX_STEPS, w.FAILED),
    (Status.DONE, StopReason.MAX_TOKENS, w.FAILED),
    (Status.DONE, StopReason.TIMEOUT, w.FAILED),
    (Status.DONE, StopReason.MAX_COST, w.FAILED),
    (Status.DONE, StopReason.MAX_SPEND, w.FAILED),
    (Status.DONE, StopReason.MAX_CONTEXT, w.FAILED),
    (Status.CANCELLED, StopReason.CANCELLED, w.CANCELED),
    (Status.DEAD, StopReason.FAILED, w.FAILED),
]


@pytest.mark.parametrize(("status", "reason", "state"), STATES)
def test_each_status_and_reason_maps_to_its_a2a_state(status, reason, state):
    assert w.a2a_state(status, reason) == state


def test_only_ended_tasks_are_terminal_and_an_approval_wait_settles_a_blocking_send():
    for status, _reason, state in STATES:
        assert (state in w.TERMINAL) == status.terminal
    assert w.AUTH_REQUIRED in w.SETTLED and w.WORKING not in w.SETTLED and w.SUBMITTED not in w.SETTLED


def config(**over) -> RuntimeConfig:
    doc = {
        "fleet": "docs-bot",
        "tools": [
            {"name": "search_docs", "type": "Retrieval", "description": "searches the manual"},
            {"name": "spawn", "type": "Spawn"},
        ],
        "a2a": {},
        **over,
    }
    return RuntimeConfig.model_validate(doc)


def test_the_card_is_a_valid_a2a_card_built_from_the_fleet():
    card = w.agent_card(config(), "https://agents.example.com/", "0.1.0", secured=True)
    parsed = ParseDict(card, AgentCard())  # a2a-sdk's own type: a misspelt field fails here
    assert parsed.name == "docs-bot"
    assert parsed.supported_interfaces[0].url == "https://agents.example.com/a2a"
    assert parsed.supported_interfaces[0].protocol_binding == "JSONRPC"
    assert parsed.supported_interfaces[0].protocol_version == "1.0"
    assert (parsed.supported_interfaces[1].protocol_binding, parsed.supported_interfaces[1].url) == (
        "HTTP+JSON",
        "https://agents.example.com/a2a/rest",
    )
    assert parsed.capabilities.streaming and not parsed.capabilities.push_notifications
    assert parsed.security_schemes["bearer"].http_auth_security_scheme.scheme == "Bearer"
    assert list(parsed.security_requirements[0].schemes) == ["bearer"]
    ids = [s.id for s in parsed.skills]
    assert ids == ["answer", "tool-search_docs"]  # Spawn is how the agent works, not a skill
    assert "citations" in parsed.skills[0].description and "search_docs" in parsed.description


def test_the_card_takes_spec_a2a_and_names_no_scheme_without_tokens():
    skills = [{"id": "pg", "name": "Postgres answers", "description": "answers PostgreSQL questions", "tags": ["pg"]}]
    cfg = config(a2a={"description": "PostgreSQL help", "skills": skills})
    card = w.agent_card(cfg, "http://x", "1", secured=False)
    assert card["description"] == "PostgreSQL help"
    assert card["skills"] == [{**skills[0], "examples": []}]
    assert "securitySchemes" not in card and "securityRequirements" not in card


def record(**over) -> TaskRecord:
    base = dict(
        id="t1",
        goal="what is vacuum?",
        status=Status.DONE,
        limits=Limits(),
        created_at=1_700_000_000.0,
        deadline=1_700_000_600.0,
        root="t1",
        session="ctx-9",
        reason=StopReason.FINAL_ANSWER,
        answer="it reclaims space [source: sql-vacuum.html]",
        finished_at=1_700_000_005.25,
    )
    base.update(over)
    return TaskRecord(**base)


def test_a_task_is_a_valid_a2a_task_with_its_answer_history_and_state():
    steps = [Step(n=0, content="let me search", tool_calls=[], usage=Usage()), Step(1, "", [], Usage())]
    task = w.a2a_task(record(), steps)
    parsed = ParseDict(task, Task())
    assert (parsed.id, parsed.context_id) == ("t1", "ctx-9")
    assert parsed.status.state == 3  # TASK_STATE_COMPLETED
    assert parsed.status.timestamp.ToJsonString() == "2023-11-14T22:13:25.250Z"
    assert [p.text for m in parsed.history for p in m.parts] == ["what is vacuum?", "let me search"]
    assert parsed.artifacts[0].parts[0].text.startswith("it reclaims space")
    assert list(parsed.artifacts[0].parts[1].data.struct_value["citations"]) == ["sql-vacuum.html"]
    assert w.a2a_task(record(), steps, history_length=1)["history"][0]["messageId"] == "t1-step-0"
    assert "history" not in w.a2a_task(record(), steps, history_length=0)
    assert "artifacts" not in w.a2a_task(record(status=Status.RUNNING, answer="", finished_at=0.0))
    assert w.a2a_task(record(session=""))["contextId"] == "t1"  # a task sent without a session


def test_a_budget_stop_is_failed_with_its_reason_and_still_carries_the_best_answer():
    task = w.a2a_task(record(reason=StopReason.MAX_STEPS))
    assert task["status"]["state"] == w.FAILED
    assert "max_steps budget: the artifact holds" in task["status"]["message"]["parts"][0]["text"]
    empty = w.a2a_task(record(reason=StopReason.MAX_STEPS, answer=""))
    assert "before it had an answer" in empty["status"]["message"]["parts"][0]["text"] and "artifacts" not in empty
    assert task["artifacts"][0]["parts"][0]["text"].startswith("it reclaims")


def test_events_become_status_and_artifact_updates():
    def one(ev):
        return [ParseDict(r, StreamResponse()) for r in w.stream_events("t1", "c", "1-0", ev)]

    assert one({"type": "queued", "at": 1}) == []
    (step,) = one({"type": "step", "at": 2, "step": 0, "content": "thinking", "tool_calls": ["search_docs"]})
    assert (
        step.status_update.status.state == 2 and "calls search_docs" in step.status_update.status.message.parts[0].text
    )
    (wait,) = one({"type": "approval_requested", "at": 3, "step": 1})
    assert wait.status_update.status.state == 8  # TASK_STATE_AUTH_REQUIRED
    art, final = one({"type": "finished", "at": 4, "status": "done", "reason": "final_answer", "answer": "42"})
    assert art.artifact_update.artifact.parts[0].text == "42" and art.artifact_update.last_chunk
    assert final.status_update.status.state == 3
    (dead,) = one({"type": "finished", "at": 5, "status": "dead", "reason": "failed", "error": "boom"})
    assert dead.status_update.status.state == 4 and "boom" in dead.status_update.status.message.parts[0].text


def send(parts, **config):
    return {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": parts}, "configuration": config}


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, w.INVALID_PARAMS),
        ({"message": {"role": "ROLE_USER", "parts": [{"text": "x"}]}}, w.INVALID_PARAMS),  # no messageId
        ({"message": {"messageId": "m", "role": "ROLE_AGENT", "parts": [{"text": "x"}]}}, w.INVALID_PARAMS),
        (send([]), w.INVALID_PARAMS),
        (send([{"text": "x"}] * (w.MAX_PARTS + 1)), w.INVALID_PARAMS),
        (send([{"text": "x" * 101}]), w.INVALID_PARAMS),
        (send([{"raw": "AA=="}]), w.CONTENT_TYPE_NOT_SUPPORTED),
        (send([{"url": "http://a/b.pdf"}]), w.CONTENT_TYPE_NOT_SUPPORTED),
        (send([{"data": {"x": 1}, "mediaType": "application/xml"}]), w.CONTENT_TYPE_NOT_SUPPORTED),
        (send([{"text": "x", "mediaType": "application/pdf"}]), w.CONTENT_TYPE_NOT_SUPPORTED),
        (send([{"text": "x"}], acceptedOutputModes=["image/png"]), w.CONTENT_TYPE_NOT_SUPPORTED),
        (send([{"text": "x"}], taskPushNotificationConfig={"url": "http://a"}), w.PUSH_NOTIFICATION_NOT_SUPPORTED),
        (send([{"text": "x"}], historyLength=-1), w.INVALID_PARAMS),
    ],
)
def test_bad_send_parameters_are_refused_with_the_spec_code(params, code):
    with pytest.raises(w.RpcError) as e:
        w.parse_send(params, max_goal_chars=100)
    assert e.value.code == code


def test_a_good_send_is_read_whole():
    params = send([{"text": "a"}, {"text": "b"}], acceptedOutputModes=["text/plain"], returnImmediately=True)
    params["message"]["contextId"] = "c1"
    params["metadata"] = {"budgets": {"maxSteps": 3}}
    req = w.parse_send(params, 100)
    assert (req.goal, req.context_id, req.return_immediately, req.budgets) == ("a\n\nb", "c1", True, {"maxSteps": 3})
    assert w.submission_body(req, "c1") == {
        "goal": "a\n\nb",
        "session": "c1",
        "metadata": {},
        "budgets": {"maxSteps": 3},
    }


def test_a_data_part_is_read_as_json_text_in_its_place():
    # Agents that send structured input (the A2A kit's enhanced-parts check; ADK's tool arguments)
    # are read, not refused: on 5baf339 this raised CONTENT_TYPE_NOT_SUPPORTED.
    req = w.parse_send(send([{"text": "rank these"}, {"data": {"ids": [3, 1], "by": "é"}}, {"data": [1]}]), 100)
    assert req.goal == 'rank these\n\n{"ids":[3,1],"by":"é"}\n\n[1]' and req.decision is None
    # Files still are not: refused, never dropped unread.
    with pytest.raises(w.RpcError) as e:
        w.parse_send(send([{"text": "read this"}, {"raw": "AA==", "mediaType": "application/pdf"}]), 100)
    assert e.value.code == w.CONTENT_TYPE_NOT_SUPPORTED and "files" in e.value.message
    # A data part too long for the goal is refused as text is.
    with pytest.raises(w.RpcError) as e:
        w.parse_send(send([{"data": {"x": "y" * 200}}]), 100)
    assert e.value.code == w.INVALID_PARAMS


def test_rest_errors_carry_the_status_a2a_maps_each_code_to():
    for code, status in [(w.TASK_NOT_FOUND, 404), (w.INVALID_PARAMS, 400), (w.TENANT_LIMIT, 429), (w.FORBIDDEN, 403)]:
        got, body = w.rest_error(w.RpcError(code, "m"))
        assert (
            got == status
            and body["error"]["code"] == status
            and body["error"]["details"][0]["reason"] == w.REASONS[code]
        )
    assert w.query_params({"pageSize": "5", "includeArtifacts": "true", "historyLength": "x"}) == {
        "pageSize": 5,
        "includeArtifacts": True,
        "historyLength": "x",
    }


def test_envelopes_and_errors():
    for body, code in [([], w.INVALID_REQUEST), ({"jsonrpc": "2.0"}, w.INVALID_REQUEST), ("x", w.INVALID_REQUEST)]:
        with pytest.raises(w.RpcError) as e:
            w.parse_envelope(body)
        assert e.value.code == code
    assert w.parse_envelope({"jsonrpc": "2.0", "id": 3, "method": "GetTask"}) == (3, "GetTask", {})
    err = w.error_response(3, w.RpcError(w.TASK_NOT_FOUND, "no task x", taskId="x"))
    assert err["error"]["code"] == -32001 and err["error"]["data"][0]["reason"] == "TASK_NOT_FOUND"
    assert err["error"]["data"][0]["metadata"] == {"taskId": "x"}
    assert w.request_id_of({"id": True}) is None and w.request_id_of({"id": "a"}) == "a"


def test_list_parameters():
    q = w.parse_list({"pageSize": 5, "status": "TASK_STATE_WORKING", "statusTimestampAfter": "2026-01-01T00:00:00Z"})
    assert (q.page_size, q.state, q.after) == (5, w.WORKING, 1767225600.0)
    for bad in ({"pageSize": 101}, {"status": "RUNNING"}, {"pageToken": "../x"}, {"statusTimestampAfter": "soon"}):
        with pytest.raises(w.RpcError):
            w.parse_list(bad)


def fleet(a2a=None) -> AgentFleet:
    spec = {"modelRef": {"name": "m"}, "redis": {"url": "redis://r:6379"}}
    if a2a is not None:
        spec["a2a"] = a2a
    return AgentFleet.model_validate({"metadata": {"name": "bot", "namespace": "team"}, "spec": spec})


POD = PodLayout(metrics_port=9090, api_port=8080, tokens_file="/t", tool_headers_dir="/h", shutdown_grace_seconds=5)


def test_spec_a2a_reaches_the_runtime_config_and_is_off_by_default():
    target = ModelTarget("m", "m")
    assert "a2a" not in runtime_config(fleet(), primary=target, redis_url="redis://r", pod=POD)
    doc = runtime_config(fleet({"description": "d"}), primary=target, redis_url="redis://r", pod=POD)
    assert doc["a2a"] == {"description": "d", "url": "http://bot-api.team.svc:8080", "skills": []}
    public = runtime_config(fleet({"url": "https://a.example/fleet"}), primary=target, redis_url="redis://r")
    assert public["a2a"]["url"] == "https://a.example/fleet"
    assert RuntimeConfig.model_validate(doc).a2a.description == "d"


@pytest.mark.parametrize(
    "a2a",
    [
        {"url": "ftp://x"},
        {"url": "https://user:pw@x"},
        {"url": "https://x/?token=abc"},
        {"skills": [{"id": "Bad Id", "name": "n", "description": "d"}]},
        {"skills": [{"id": "a", "name": "n", "description": "d", "tags": ["x" * 65]}]},
        {"unknown": 1},
    ],
)
def test_spec_a2a_refuses_what_the_card_cannot_carry(a2a):
    fleet({"url": "https://ok.example/x", "skills": [{"id": "a", "name": "n", "description": "d"}]})  # the control
    with pytest.raises(ValidationError, match="a2a"):
        fleet(a2a)
