"""Edges of routing's pure parts that mutation testing (issue 21, fifth round) found unpinned:
the SSE line cutter, the stream accumulator's errors and tool-call hand-out, the stream body,
the observer, the spill wait's own timeout, replica naming and the ejection test of an unknown
replica, and the rendezvous score itself."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from agentfleet_runtime.model.client import ModelError
from agentfleet_runtime.routing.hashing import score
from agentfleet_runtime.routing.pool import ReplicaPool
from agentfleet_runtime.routing.settings import RoutingSettings, Tier
from agentfleet_runtime.routing.sources import StaticSource
from agentfleet_runtime.routing.spillwait import RoomWaiter
from agentfleet_runtime.routing.streaming import SseLines, StreamAccumulator, StreamError, StreamObserver, stream_body
from agentfleet_runtime.routing.ttfthedge import AttemptFailed
from agentfleet_sim import run_virtual


def test_sse_lines_drop_the_carriage_return_keep_a_partial_line_and_read_data_without_a_space() -> None:
    # Pins SseLines.feed: CRLF endings, a line cut mid-way waits for its end, "data:" with or without a space.
    lines = SseLines()
    assert lines.feed(b'data:{"a":1}\r\n: a comment\r\nevent: x\r\ndata: TAX\r\n\r\ndata: [DO') == [b'{"a":1}', b"TAX"]
    assert lines.feed(b"NE]\r\n") == [b"[DONE]"]


def tool_delta(index: int, name: str, args: str) -> dict:
    return {
        "choices": [
            {
                "delta": {
                    "tool_calls": [{"index": index, "id": f"c{index}", "function": {"name": name, "arguments": args}}]
                }
            }
        ]
    }


def test_an_empty_stream_amounts_to_an_empty_answer_and_non_chunks_carry_nothing() -> None:
    # Pins the accumulator's starting state and what [DONE] and a non-object payload return.
    acc = StreamAccumulator()
    assert acc.body() == {
        "object": "chat.completion",
        "model": "",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": None}, "finish_reason": None}],
    }
    assert acc.first_token is False and acc.done is False
    assert acc.feed(b"[1, 2]") == (False, "")
    assert acc.feed(b"[DONE]") == (False, "") and acc.done


@pytest.mark.parametrize(
    ("chunk", "message"),
    [
        ({"error": {"message": "model overloaded"}}, "model overloaded"),
        ({"error": "plain text"}, "plain text"),
        ({"error": "no choices", "choices": []}, "no choices"),
    ],
)
def test_an_error_inside_the_stream_raises_its_message(chunk: dict, message: str) -> None:
    # Pins feed_chunk's error: a dict's "message", a bare string as is; raised when choices are missing or empty.
    with pytest.raises(StreamError) as e:
        StreamAccumulator().feed_chunk(chunk)
    assert str(e.value) == message


def test_an_error_beside_choices_is_not_raised() -> None:
    # Pins: a chunk that carries choices is read even when it also names an error.
    acc = StreamAccumulator()
    assert acc.feed_chunk({"error": {"message": "x"}, "choices": [{"delta": {"content": "hi"}}]}) == (True, "hi")


def test_tool_calls_are_handed_out_in_order_once_each_and_the_last_when_the_finish_reason_comes() -> None:
    # Pins ready_tool_calls: each call once it is followed by the next, past those already handed,
    # and the last one on the finish reason alone (before [DONE]).
    acc = StreamAccumulator()
    acc.feed_chunk(tool_delta(0, "a", "{}"))
    assert acc.ready_tool_calls() == []
    acc.feed_chunk(tool_delta(1, "b", "{}"))
    assert [c["function"]["name"] for c in acc.ready_tool_calls()] == ["a"]
    acc.feed_chunk(tool_delta(2, "c", "{}"))
    assert [c["function"]["name"] for c in acc.ready_tool_calls()] == ["b"]
    acc.feed_chunk({"choices": [{"delta": {}, "finish_reason": "tool_calls"}]})
    assert acc.ready_tool_calls() == [{"id": "c2", "type": "function", "function": {"name": "c", "arguments": "{}"}}]
    assert acc.ready_tool_calls() == []


def test_stream_body_asks_for_a_stream_ending_with_usage() -> None:
    # Pins the two fields a streamed request adds, by their wire names.
    assert stream_body({"model": "m"}) == {"model": "m", "stream": True, "stream_options": {"include_usage": True}}


def test_the_observer_reports_the_first_token_once_and_passes_text_on() -> None:
    # Pins StreamObserver.fold: on_first on the first token, on_text with the delta, nothing for no text.
    firsts: list[int] = []
    texts: list[str] = []
    obs = StreamObserver(lambda: firsts.append(1), texts.append)
    acc = StreamAccumulator()
    obs.fold(acc, True, "he")
    obs.fold(acc, False, "llo")
    obs.fold(acc, False, "")
    assert firsts == [1] and texts == ["he", "llo"]


def test_the_spill_wait_gives_up_at_its_own_timeout() -> None:
    # Pins RoomWaiter.wait: no room and no time is False at once; a wait nobody wakes ends at its timeout.
    async def run() -> tuple[bool, bool, float]:
        loop = asyncio.get_running_loop()
        waiter = RoomWaiter()
        at_once = await waiter.wait("r0", lambda: False, 0.0)
        started = loop.time()
        later = await asyncio.wait_for(waiter.wait("r0", lambda: False, 1.0), 5.0)
        return at_once, later, loop.time() - started

    at_once, later, waited = run_virtual(run())
    assert at_once is False and later is False and waited == pytest.approx(1.0)


def test_a_bare_url_names_its_replica_by_host_and_port() -> None:
    # Pins StaticSource's names: the part between "://" and the first "/" (the whole string without a scheme).
    src = StaticSource(["http://10.0.0.1:8000/v1", "http://h:1/a/b", "h:2"])
    assert [e.name for e in src.endpoints()] == ["10.0.0.1:8000", "h:1", "h:2"]


def test_an_unknown_replica_is_not_ejected() -> None:
    # Pins ReplicaPool.ejected for a name it has no detector for.
    src = StaticSource(["http://r0/v1"])
    assert ReplicaPool(Tier("m", "m", RoutingSettings()), src).ejected("r9") is False


def test_an_attempt_failure_reads_as_its_error() -> None:
    # Pins AttemptFailed's message: the model error's own.
    assert str(AttemptFailed(ModelError("engine said no"), ["r0"])) == "engine said no"


def test_the_score_is_blake2b_of_key_nul_replica_read_as_a_big_endian_64_bit_integer() -> None:
    # Pins the hash every worker pod must agree on, across versions too (a rolling update of the
    # workers must not move every task's home): the NUL separator, 8 bytes, big-endian.
    assert (
        score("task-1", "r0")
        == int.from_bytes(hashlib.blake2b(b"task-1\x00r0", digest_size=8).digest(), "big")
        == 0x23FD4927375B2FA5
    )
