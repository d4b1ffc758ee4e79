"""Where the last cache_control breakpoint cuts the conversation (breakpoints.py)."""

from __future__ import annotations

from cortex.dialects.anthropic.breakpoints import prefix_conversation
from tests.anthropic.bad_requests import base_request

MARK = {"type": "ephemeral"}
TOOL = {"name": "get_time", "input_schema": {"type": "object"}}
SYSTEM = [{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}]


def _text(text: str, marked: bool = False) -> dict:
    return {"type": "text", "text": text, **({"cache_control": MARK} if marked else {})}


def test_no_breakpoint_no_prefix() -> None:
    assert prefix_conversation(base_request(system=SYSTEM, tools=[TOOL])) is None


def test_a_system_breakpoint_cuts_after_its_block() -> None:
    system = [_text("One.", marked=True), _text("Two.")]
    body = base_request(system=system, tools=[TOOL])
    assert prefix_conversation(body) == {
        "messages": [{"role": "system", "content": "One."}],
        "tools": [{"type": "function", "function": {"name": "get_time", "parameters": TOOL["input_schema"]}}],
    }  # fmt: skip


def test_the_last_breakpoint_wins_and_cuts_inside_its_message() -> None:
    messages = [
        {"role": "user", "content": [_text("a", marked=True)]},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": [_text("c", marked=True), _text("d")]},
    ]
    body = base_request(system=[_text("S", marked=True)], messages=messages)
    assert prefix_conversation(body)["messages"] == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]


def test_tool_results_after_the_breakpoint_stay_with_their_calls() -> None:
    call = {"type": "tool_use", "id": "t1", "name": "get_time", "input": {}}
    messages = [
        {"role": "user", "content": "time?"},
        {"role": "assistant", "content": [call]},
        {"role": "user", "content": [_text("see:", marked=True),
                                     {"type": "tool_result", "tool_use_id": "t1", "content": "9"},
                                     _text("thanks")]},
    ]  # fmt: skip
    cut = prefix_conversation(base_request(messages=messages, tools=[TOOL]))["messages"]
    assert cut[-2:] == [
        {"role": "tool", "tool_call_id": "t1", "content": "9"},
        {"role": "user", "content": "see:"},
    ]


def test_a_tools_breakpoint_has_no_turns() -> None:
    other = {**TOOL, "name": "other"}
    cut = prefix_conversation(
        base_request(system="S", tools=[{**TOOL, "cache_control": MARK}, other])
    )
    assert cut["messages"] == [] and [t["function"]["name"] for t in cut["tools"]] == ["get_time"]


def test_top_level_cache_control_marks_the_whole_conversation() -> None:
    body = base_request(system="S", cache_control=MARK)
    assert prefix_conversation(body)["messages"] == [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "Hello"},
    ]
