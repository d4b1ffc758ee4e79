"""Every field today's Anthropic clients send is honoured or accepted (a table through the
gateway), with the effect checked where a local model can show one."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from tests.anthropic.sse import parse_sse
from tests.support.anthropic_stack import TEXT_SCRIPT, THINK_MODEL, Stack, whole_prompt

pytestmark = pytest.mark.slow
ASK = [{"role": "user", "content": "Hello"}]
BILLING = {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1.332; cch=1a2b;"}
_CACHED = {"type": "ephemeral"}
_USE = {"type": "tool_use", "id": "toolu_1", "name": "get_time", "input": {}}
_RESULT = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "noon",
           "cache_control": _CACHED}  # fmt: skip
TOOL = {"name": "get_time", "input_schema": {"type": "object"}, "cache_control": _CACHED}

# (name, extra fields) — each is answered 200 with a message.
ACCEPTED: list[tuple[str, dict[str, Any]]] = [
    ("system string", {"system": "Be brief."}),
    ("system blocks with cache_control",
     {"system": [{"type": "text", "text": "Be brief.", "cache_control": _CACHED}]}),
    ("billing header block", {"system": [BILLING, {"type": "text", "text": "Be brief."}]}),
    ("top-level cache_control", {"cache_control": _CACHED}),
    ("metadata.user_id", {"metadata": {"user_id": '{"device_id": "d", "session_id": "s"}'}}),
    ("service_tier", {"service_tier": "auto"}),
    ("inference_geo", {"inference_geo": "eu"}),
    ("speed", {"speed": "standard"}),
    ("stop_sequences", {"stop_sequences": ["STOP"]}),
    ("temperature", {"temperature": 1}),
    ("top_p", {"top_p": 0.9}),
    ("top_k", {"top_k": 40}),
    ("tools and tool_choice", {"tools": [TOOL], "tool_choice": {"type": "auto"}}),
    ("tool_choice none", {"tools": [TOOL], "tool_choice": {"type": "none"}}),
    ("thinking enabled", {"thinking": {"type": "enabled", "budget_tokens": 8}}),
    ("thinking adaptive", {"thinking": {"type": "adaptive"}}),
    ("thinking disabled", {"thinking": {"type": "disabled"}}),
    ("output_config.effort", {"output_config": {"effort": "high"}}),
    ("context_management keep all",
     {"context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}}),
    ("system turn in messages",
     {"messages": [*ASK, {"role": "system", "content": "Answer in French."},
                   {"role": "user", "content": "Bonjour"}]}),
    ("assistant prefill", {"messages": [*ASK, {"role": "assistant", "content": "Well,"}]}),
    ("tool round trip with cache_control",
     {"tools": [TOOL], "messages": [*ASK, {"role": "assistant", "content": [_USE]},
                                    {"role": "user", "content": [_RESULT]}]}),
    ("thinking and redacted thinking sent back",
     {"messages": [*ASK, {"role": "assistant", "content": [
         {"type": "thinking", "thinking": "Greet back.", "signature": "sig"},
         {"type": "redacted_thinking", "data": "opaque"},
         {"type": "text", "text": "Hi."}]}, {"role": "user", "content": "Again"}]}),
]  # fmt: skip


@pytest.mark.parametrize(("name", "extra"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_accepted_field(stack: Stack, name: str, extra: dict[str, Any]) -> None:
    body = {"model": "scripted-text", "max_tokens": 64, "messages": ASK, **extra}
    headers = {"anthropic-version": "2023-06-01",
               "anthropic-beta": "claude-code-20250219,context-management-2025-06-27"}  # fmt: skip
    response = stack.post("/v1/messages?beta=true", body, **headers)
    assert response.status == 200, response.text
    message = response.json()
    assert message["type"] == "message" and message["content"], message
    if "context_management" in extra:
        assert message["context_management"] == {"applied_edits": []}


def _count(stack: Stack, model: str = "scripted-text", **body: Any) -> int:
    response = stack.post("/v1/messages/count_tokens", {"model": model, "messages": ASK, **body})
    assert response.status == 200, response.text
    return response.json()["input_tokens"]


def test_the_billing_header_never_reaches_the_prompt(stack: Stack) -> None:
    plain = [{"type": "text", "text": "Be brief."}]
    assert _count(stack, system=[BILLING, *plain]) == _count(stack, system=plain)


def test_system_turns_and_prefill_reach_the_prompt(stack: Stack) -> None:
    turn = [
        *ASK,
        {"role": "system", "content": "Answer in French."},
        {"role": "user", "content": "Bonjour"},
    ]
    without = [*ASK, {"role": "user", "content": "Bonjour"}]
    assert _count(stack, messages=turn) > _count(stack, messages=without)
    prefill = [*ASK, {"role": "assistant", "content": "Well, as I see it"}]
    assert _count(stack, messages=prefill) > _count(stack)
    reply = stack.post(
        "/v1/messages", {"model": "scripted-text", "max_tokens": 64, "messages": prefill}
    )
    assert reply.json()["content"][0]["text"] == TEXT_SCRIPT, "the continuation only"


def _thinking_turns(n: int) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    for i in range(n):
        turns += [{"role": "user", "content": f"Question {i}"},
                  {"role": "assistant", "content": [
                      {"type": "thinking", "thinking": f"Long thoughts number {i}. " * 5, "signature": "s"},
                      {"type": "text", "text": f"Answer {i}"}]}]  # fmt: skip
    return [*turns, {"role": "user", "content": "Last question"}]


def test_clear_thinking_edits_the_history_and_reports_it(stack: Stack) -> None:
    history = _thinking_turns(3)
    edit = {"type": "clear_thinking_20251015", "keep": {"type": "thinking_turns", "value": 1}}
    body = {"model": THINK_MODEL, "max_tokens": 2048, "messages": history,
            "thinking": {"type": "adaptive"}, "context_management": {"edits": [edit]}}  # fmt: skip
    reply = stack.post("/v1/messages", body).json()
    [applied] = reply["context_management"]["applied_edits"]
    assert applied["type"] == "clear_thinking_20251015" and applied["cleared_thinking_turns"] == 2
    full = _count(stack, THINK_MODEL, messages=history, thinking={"type": "adaptive"})
    assert applied["cleared_input_tokens"] == full - whole_prompt(reply["usage"]) > 0


def test_clear_tool_uses_keeps_the_latest_results(stack: Stack) -> None:
    messages: list[dict[str, Any]] = []
    for i in range(3):
        use = {**_USE, "id": f"toolu_{i}"}
        result = {"type": "tool_result", "tool_use_id": f"toolu_{i}", "content": "noon " * 40}
        messages += [{"role": "user", "content": f"Time {i}?"}, {"role": "assistant", "content": [use]},
                     {"role": "user", "content": [result]}]  # fmt: skip
    edit = {"type": "clear_tool_uses_20250919", "trigger": {"type": "tool_uses", "value": 2},
            "keep": {"type": "tool_uses", "value": 1}}  # fmt: skip
    body = {"model": "scripted-text", "max_tokens": 64, "messages": messages, "tools": [TOOL],
            "context_management": {"edits": [edit]}, "stream": True}  # fmt: skip
    events = parse_sse(stack.post("/v1/messages", body).content)
    [delta] = [data for name, data in events if name == "message_delta"]
    [applied] = delta["context_management"]["applied_edits"]
    assert applied["type"] == "clear_tool_uses_20250919" and applied["cleared_tool_uses"] == 2
    assert applied["cleared_input_tokens"] > 0


def test_structured_output_is_relayed_to_the_neuron(stack: Stack) -> None:
    """The scripted model would say TEXT_SCRIPT: the neuron's grammar makes it the document."""
    schema = {
        "type": "object",
        "properties": {"colour": {"enum": ["red", "green", "blue"]}},
        "required": ["colour"],
        "additionalProperties": False,
    }
    body = {"model": "scripted-text", "max_tokens": 64, "messages": ASK, "temperature": 0,
            "output_config": {"format": {"type": "json_schema", "schema": schema}}}  # fmt: skip
    response = stack.post("/v1/messages", body)
    assert response.status == 200, response.text
    message = response.json()
    assert message["stop_reason"] == "end_turn", message
    [block] = message["content"]
    jsonschema.validate(json.loads(block["text"]), schema)
