"""Anthropic request → OpenAI request translation, as pure functions."""

from __future__ import annotations

import json

import pytest

from cortex.common.wire import ApiError, anthropic_error_body
from cortex.dialects.anthropic.request import to_openai_request, to_tokenize_request
from tests.anthropic.bad_requests import BAD_REQUESTS, base_request

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}


def test_plain_text_request_carries_sampling_and_stops() -> None:
    out = to_openai_request(
        base_request(
            system="Be brief.",
            stop_sequences=["END", "\n\n"],
            temperature=0.5,
            top_p=0.9,
            top_k=40,
            metadata={"user_id": "u-123"},
        )
    )
    assert out == {
        "model": "m",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hello"},
        ],
        "max_tokens": 16,
        "truncate_max_tokens": True,
        "chat_template_kwargs": {"enable_thinking": False},
        "stop": ["END", "\n\n"],
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 40,
    }
    assert "u-123" not in json.dumps(out)


def test_stream_asks_for_usage_in_every_chunk() -> None:
    """message_start needs input_tokens before the final usage chunk arrives."""
    out = to_openai_request(base_request(stream=True))
    assert out["stream"] is True
    assert out["stream_options"] == {"include_usage": True, "continuous_usage_stats": True}


def test_system_blocks_join_and_multipart_user_content_stays_multipart() -> None:
    out = to_openai_request(
        base_request(
            system=[
                {"type": "text", "text": "One."},
                {"type": "text", "text": "Two.", "cache_control": {"type": "ephemeral"}},
            ],
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
                }
            ],
        )
    )
    assert out["messages"] == [
        {"role": "system", "content": "One.\nTwo."},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
    ]


def test_consecutive_turns_of_one_role_merge() -> None:
    out = to_openai_request(
        base_request(messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    )
    assert out["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}
    ]


def test_tool_round_trip_messages() -> None:
    body = base_request(
        tools=[WEATHER_TOOL],
        tool_choice={"type": "auto"},
        messages=[
            {"role": "user", "content": "Weather in Paris and Oslo?"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Checking."},
                    {
                        "type": "tool_use",
                        "id": "toolu_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    },
                    {
                        "type": "tool_use",
                        "id": "toolu_2",
                        "name": "get_weather",
                        "input": {"city": "Oslo"},
                    },
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18°C"},
                    {
                        "type": "tool_result",
                        "tool_use_id": "toolu_2",
                        "content": [
                            {"type": "text", "text": "station"},
                            {"type": "text", "text": "offline"},
                        ],
                        "is_error": True,
                    },
                    {"type": "text", "text": "Summarise."},
                ],
            },
        ],
    )
    out = to_openai_request(body)
    assert out["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city",
                "parameters": WEATHER_TOOL["input_schema"],
            },
        }
    ]
    assert out["tool_choice"] == "auto"
    assert out["messages"] == [
        {"role": "user", "content": "Weather in Paris and Oslo?"},
        {
            "role": "assistant",
            "content": "Checking.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                },
                {
                    "id": "toolu_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18°C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: station\noffline"},
        {"role": "user", "content": "Summarise."},
    ]


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, {"tool_choice": "auto"}),
        ({"type": "any"}, {"tool_choice": "required"}),
        ({"type": "none"}, {"tool_choice": "none"}),
        (
            {"type": "tool", "name": "get_weather"},
            {"tool_choice": {"type": "function", "function": {"name": "get_weather"}}},
        ),
        (
            {"type": "any", "disable_parallel_tool_use": True},
            {"tool_choice": "required", "parallel_tool_calls": False},
        ),
    ],
)
def test_tool_choice_maps(choice: dict, expected: dict) -> None:
    out = to_openai_request(base_request(tools=[WEATHER_TOOL], tool_choice=choice))
    assert {k: out[k] for k in ("tool_choice", "parallel_tool_calls") if k in out} == expected


def test_tokenize_body_has_no_sampling_fields_and_needs_no_max_tokens() -> None:
    body = base_request(tools=[WEATHER_TOOL], system="S")
    del body["max_tokens"]
    out = to_tokenize_request(body)
    # The thinking switch changes the rendered prompt of thinking templates, so it is kept.
    assert set(out) == {"model", "messages", "tools", "chat_template_kwargs"}
    assert out["messages"][0] == {"role": "system", "content": "S"}


@pytest.mark.parametrize(
    ("name", "body", "status", "fragment"), BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS]
)
def test_bad_requests_raise_the_client_error(
    name: str, body: dict, status: int, fragment: str
) -> None:
    with pytest.raises(ApiError) as info:
        to_openai_request(body)
    assert info.value.status == status
    assert fragment in info.value.message
    assert anthropic_error_body(info.value)["error"]["type"] == "invalid_request_error"
