"""OpenAI response/chunks → Anthropic Message/events, checked with the anthropic SDK's own types."""

from __future__ import annotations

import re

import pytest
from anthropic._models import construct_type
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types import Message, RawMessageStreamEvent

from cortex.common.wire import ApiError
from cortex.dialects.anthropic.response import from_openai_response
from cortex.dialects.anthropic.stream import AnthropicStream, error_event
from tests.anthropic.sse import parse_sse


def _completion(content, tool_calls=None, finish="stop", stop_reason=None) -> dict:
    choice = {
        "index": 0,
        "message": {"role": "assistant", "content": content},
        "finish_reason": finish,
    }
    if tool_calls:
        choice["message"]["tool_calls"] = tool_calls
    if stop_reason is not None:
        choice["stop_reason"] = stop_reason
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [choice],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
    }


def _call(name: str, arguments: str, index: int = 0) -> dict:
    return {
        "index": index,
        "id": f"call_{index}",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def test_text_message_matches_the_sdk_model() -> None:
    msg = from_openai_response(_completion("Hi 👋 你好"), "m", [])
    parsed = Message.model_validate(msg)
    assert re.fullmatch(r"msg_[A-Za-z0-9]{24}", parsed.id)
    assert parsed.content[0].type == "text" and parsed.content[0].text == "Hi 👋 你好"
    assert (parsed.stop_reason, parsed.stop_sequence) == ("end_turn", None)
    usage = parsed.usage
    assert (usage.input_tokens, usage.output_tokens) == (11, 7)
    assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (0, 0)


def _usage(cached: int, breakpoint: int | None) -> tuple[int, int, int]:
    """(input, cache creation, cache read) of an 11-token prompt."""
    completion = _completion("Hi")
    completion["usage"]["prompt_tokens_details"] = {"cached_tokens": cached}
    message = from_openai_response(completion, "m", [], breakpoint=breakpoint)
    usage = Message.model_validate(message).usage
    return usage.input_tokens, usage.cache_creation_input_tokens, usage.cache_read_input_tokens


@pytest.mark.parametrize(
    ("cached", "breakpoint", "split"),
    [
        (8, None, (3, 0, 8)),  # no breakpoint: never a cache write, the rest is input
        (0, 6, (5, 6, 0)),  # up to the breakpoint written, what follows it input
        (4, 6, (5, 2, 4)),  # the part of it the cache held is read, not written
        (8, 6, (3, 0, 8)),  # the cache held more than the breakpoint: nothing written
        (0, 40, (0, 11, 0)),  # a breakpoint at the end (top-level cache_control)
    ],
)
def test_usage_splits_the_prompt_as_anthropic_does(cached, breakpoint, split) -> None:
    assert _usage(cached, breakpoint) == split
    assert sum(split) == 11


@pytest.mark.parametrize(
    ("finish", "matched", "stops", "reason", "sequence"),
    [
        ("stop", None, ["END"], "end_turn", None),
        ("stop", "END", ["END", "STOP"], "stop_sequence", "END"),
        ("stop", "other", ["END"], "end_turn", None),
        ("length", None, [], "max_tokens", None),
        ("tool_calls", None, [], "tool_use", None),
    ],
)
def test_stop_reasons(finish, matched, stops, reason, sequence) -> None:
    msg = from_openai_response(_completion("x", finish=finish, stop_reason=matched), "m", stops)
    assert (msg["stop_reason"], msg["stop_sequence"]) == (reason, sequence)


def test_tool_calls_become_tool_use_blocks_with_parsed_input() -> None:
    completion = _completion(
        "Let me check.", [_call("get_weather", '{"city": "Zürich"}')], finish="tool_calls"
    )
    parsed = Message.model_validate(from_openai_response(completion, "m", []))
    text, tool = parsed.content
    assert text.text == "Let me check."
    assert tool.type == "tool_use" and tool.name == "get_weather"
    assert tool.input == {"city": "Zürich"}
    assert re.fullmatch(r"toolu_[A-Za-z0-9]{24}", tool.id)
    assert parsed.stop_reason == "tool_use"


def test_unparseable_tool_arguments_are_an_upstream_error() -> None:
    with pytest.raises(ApiError) as info:
        from_openai_response(
            _completion(None, [_call("f", "{not json")], finish="tool_calls"), "m", []
        )
    assert info.value.status == 502


def _chunks(deltas: list[dict], finish: str, matched: str | None = None) -> list[dict]:
    chunks = [
        {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]} for delta in deltas
    ]
    last = {"index": 0, "delta": {}, "finish_reason": finish}
    if matched:
        last["stop_reason"] = matched
    chunks.append({"choices": [last]})
    chunks.append({"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 7}})
    return chunks


def _run(chunks: list[dict], stops: list[str] | None = None) -> bytes:
    stream = AnthropicStream("m", stops or [])
    return b"".join(stream.feed(chunk) for chunk in chunks) + stream.finish()


def _accumulate(raw: bytes) -> Message:
    snapshot, bufs = None, {}
    for name, data in parse_sse(raw):
        assert name == data["type"], "the event: line names the data's type"
        if name == "ping":
            continue
        event = construct_type(type_=RawMessageStreamEvent, value=data)
        snapshot = accumulate_event(event=event, current_snapshot=snapshot, json_bufs=bufs)
    return Message.model_validate(snapshot.model_dump())


def test_text_stream_event_sequence() -> None:
    raw = _run(
        _chunks(
            [{"role": "assistant", "content": ""}, {"content": "Hel"}, {"content": "lo"}],
            "stop",
            "END",
        ),
        ["END"],
    )
    events = parse_sse(raw)
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[-2][1]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "END"}
    assert events[-2][1]["usage"] == {
        "input_tokens": 11,
        "output_tokens": 7,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    message = _accumulate(raw)
    assert message.content[0].text == "Hello"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (11, 7)


def test_tool_stream_matches_the_non_streamed_message() -> None:
    deltas = [
        {"content": "Sure. "},
        {
            "tool_calls": [
                {
                    "index": 0,
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "f", "arguments": ""},
                }
            ]
        },
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"a": '}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": "1}"}}]},
        {
            "tool_calls": [
                {
                    "index": 1,
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "g", "arguments": '{"b": "ü"}'},
                }
            ]
        },
    ]
    raw = _run(_chunks(deltas, "tool_calls"))
    events = parse_sse(raw)
    starts = [
        (d["index"], d["content_block"]["type"]) for n, d in events if n == "content_block_start"
    ]
    assert starts == [(0, "text"), (1, "tool_use"), (2, "tool_use")]
    stops = [d["index"] for n, d in events if n == "content_block_stop"]
    assert stops == [0, 1, 2]
    streamed = _accumulate(raw)
    whole = Message.model_validate(
        from_openai_response(
            _completion(
                "Sure. ", [_call("f", '{"a": 1}'), _call("g", '{"b": "ü"}', 1)], finish="tool_calls"
            ),
            "m",
            [],
        )
    )
    strip = lambda m: [{k: v for k, v in b.model_dump().items() if k != "id"} for b in m.content]  # noqa: E731
    assert strip(streamed) == strip(whole)
    assert streamed.stop_reason == whole.stop_reason == "tool_use"


def test_empty_output_still_pings_and_closes() -> None:
    events = parse_sse(_run(_chunks([], "length")))
    assert [n for n, _ in events] == ["message_start", "ping", "message_delta", "message_stop"]
    assert events[2][1]["delta"]["stop_reason"] == "max_tokens"


def test_upstream_error_chunk_raises_and_error_event_is_anthropic_shaped() -> None:
    stream = AnthropicStream("m", [])
    with pytest.raises(ApiError):
        stream.feed({"error": {"message": "device lost", "type": "server_error"}})
    [(name, data)] = parse_sse(error_event(ApiError(502, "device lost")))
    assert name == "error"
    assert data == {"type": "error", "error": {"type": "api_error", "message": "device lost"}}
