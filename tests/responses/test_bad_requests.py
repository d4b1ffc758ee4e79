"""Bad `/v1/responses` bodies: each a 400 in the OpenAI error shape whose `param` names the field."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.anthropic_stack import Stack

_CALL = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}
_TOOL = {"type": "function", "name": "f", "parameters": {"type": "object"}}

# (name, fields over a good body, the field the error must name)
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("no input", {"input": None}, "input"),
    ("input a number", {"input": 5}, "input"),
    ("unknown field", {"frequency_penalty": 1}, "frequency_penalty"),
    ("model a number", {"model": 5}, "model"),
    ("bad role", {"input": [{"role": "robot", "content": "x"}]}, "input.0.role"),
    ("image part", {"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]},
     "input.0.content.0.type"),
    ("unknown item", {"input": [{"type": "compaction", "encrypted_content": "x"}]}, "input.0.type"),
    ("output without its call", {"input": [{"type": "function_call_output", "call_id": "c9", "output": "x"}]},
     "input.0.call_id"),
    ("call without a name", {"input": [{**_CALL, "name": None}]}, "input.0.name"),
    ("only instructions", {"input": [], "instructions": "Be brief."}, "input"),
    ("instructions a number", {"instructions": 5}, "instructions"),
    ("max_output_tokens 0", {"max_output_tokens": 0}, "max_output_tokens"),
    ("max_output_tokens a string", {"max_output_tokens": "9"}, "max_output_tokens"),
    ("temperature too high", {"temperature": 3}, "temperature"),
    ("top_p negative", {"top_p": -1}, "top_p"),
    ("stream a string", {"stream": "yes"}, "stream"),
    ("store a string", {"store": "no"}, "store"),
    ("text format xml", {"text": {"format": {"type": "xml"}}}, "text.format.type"),
    ("json_schema without schema", {"text": {"format": {"type": "json_schema", "name": "x"}}},
     "text.format.schema"),
    ("verbosity loud", {"text": {"verbosity": "loud"}}, "text.verbosity"),
    ("reasoning effort max", {"reasoning": {"effort": "max"}}, "reasoning.effort"),
    ("reasoning summary long", {"reasoning": {"summary": "long"}}, "reasoning.summary"),
    ("include unknown", {"include": ["message.output_text.logprobs"]}, "include.0"),
    ("tool type robot", {"tools": [{"type": "robot"}]}, "tools.0.type"),
    ("tool name with spaces", {"tools": [{**_TOOL, "name": "a b"}]}, "tools.0.name"),
    ("tool names repeat", {"tools": [_TOOL, _TOOL]}, "tools"),
    ("custom tool format", {"tools": [{"type": "custom", "name": "p", "format": {"type": "regex"}}]},
     "tools.0.format.type"),
    ("tool_choice unknown tool", {"tools": [_TOOL], "tool_choice": {"type": "function", "name": "g"}},
     "tool_choice.name"),
    ("tool_choice web_search", {"tool_choice": {"type": "web_search"}}, "tool_choice.type"),
    ("required without tools", {"tool_choice": "required"}, "tool_choice"),
    ("parallel_tool_calls a string", {"tools": [_TOOL], "parallel_tool_calls": "x"}, "parallel_tool_calls"),
    ("background", {"background": True}, "background"),
    ("top_logprobs", {"top_logprobs": 5}, "top_logprobs"),
    ("metadata value a number", {"metadata": {"k": 1}}, "metadata.k"),
    ("truncation sometimes", {"truncation": "sometimes"}, "truncation"),
    ("previous_response_id a number", {"previous_response_id": 5}, "previous_response_id"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "fields", "param"), BAD, ids=[b[0] for b in BAD])
def test_bad_request_table(stack: Stack, name: str, fields: dict[str, Any], param: str) -> None:
    body = {"model": "scripted-text", "input": "Hello", **fields}
    body = {k: v for k, v in body.items() if v is not None}
    response = stack.post("/v1/responses", body)
    assert response.status == 400, response.text
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", param), error
    assert error["message"].startswith(param), error


def test_a_server_only_tool_is_no_failed_turn(stack: Stack) -> None:
    body = {"model": "scripted-text", "input": "Hi", "tools": [{"type": "web_search"},
            {"type": "file_search", "vector_store_ids": ["v"]}]}  # fmt: skip
    response = stack.post("/v1/responses", body)
    assert response.status == 200, response.text
    assert response.json()["metadata"] == {"cortex_server_only_tools": "web_search,file_search"}
