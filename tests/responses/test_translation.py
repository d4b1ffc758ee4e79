"""The Responses translation as pure functions: requests onto chat completions, chat chunks
into events, reasoning that round-trips, and the store's bounds."""

from __future__ import annotations

import json
from typing import Any

from cortex.common.wire import ApiError
from cortex.config import ResponsesSection
from cortex.dialects.responses.request import to_chat_request
from cortex.dialects.responses.response import from_chat_completion
from cortex.dialects.responses.store import ResponseStore
from cortex.dialects.responses.stream import ResponsesStream
from cortex.state.memory import MemoryState

FUNCTION = {"type": "function", "name": "exec_command", "strict": False,
            "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}}}  # fmt: skip
# The tool kinds Codex 0.171 sends, as it sends them.
CODEX_TOOLS = [
    FUNCTION,
    {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents.",
     "tools": [{"type": "function", "name": "spawn_agent", "parameters": {"type": "object"}}]},
    {"type": "custom", "name": "apply_patch", "description": "Edit files.",
     "format": {"type": "grammar", "syntax": "lark", "definition": "start: begin_patch"}},
    {"type": "tool_search", "execution": "client", "description": "Find tools.",
     "parameters": {"type": "object", "properties": {"query": {"type": "string"}}}},
    {"type": "web_search", "external_web_access": False},
]  # fmt: skip
CODEX_BODY = {
    "model": "m", "stream": True, "tools": CODEX_TOOLS, "tool_choice": "auto",
    "parallel_tool_calls": True, "reasoning": {"summary": "auto"}, "store": False,
    "include": ["reasoning.encrypted_content"], "prompt_cache_key": "session-1",
    "client_metadata": {"thread_id": "t"}, "text": {"verbosity": "low"},
    "input": [
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "You are Codex."}]},
        {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "Skills."}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "<env/>"}]},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Run it."}]},
    ],
}  # fmt: skip


def _chunk(**delta: Any) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}


def _finish(reason: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 5}}  # fmt: skip


def _events(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in raw.decode().splitlines() if line.startswith("data: ")]


def test_a_codex_request_becomes_a_chat_request() -> None:
    translated = to_chat_request(CODEX_BODY, [])
    chat = translated.chat
    assert chat["messages"] == [
        {"role": "system", "content": "You are Codex.\n\nSkills."},
        {"role": "user", "content": "<env/>"},
        {"role": "user", "content": "Run it."},
    ]
    names = [t["function"]["name"] for t in chat["tools"]]
    assert names == ["exec_command", "multi_agent_v1__spawn_agent", "apply_patch", "tool_search"]
    freeform = chat["tools"][2]["function"]
    assert freeform["parameters"]["required"] == ["input"]
    assert "start: begin_patch" in freeform["description"]
    assert translated.kit.server_only == ["web_search"]
    assert (chat["tool_choice"], chat["parallel_tool_calls"]) == ("auto", True)
    assert chat["prompt_cache_key"] == "session-1" and chat["stream"] is True
    assert translated.encrypted_reasoning and not translated.store


def test_text_format_and_effort_map_onto_chat_fields() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    body = {"model": "m", "input": "x", "reasoning": {"effort": "low"}, "max_output_tokens": 9,
            "text": {"format": {"type": "json_schema", "name": "A", "schema": schema, "strict": True}}}  # fmt: skip
    chat = to_chat_request(body, []).chat
    assert chat["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "A", "schema": schema, "strict": True}
    }  # fmt: skip
    assert chat["reasoning_effort"] == "low"
    assert chat["chat_template_kwargs"] == {"enable_thinking": True}
    assert (chat["max_tokens"], chat["truncate_max_tokens"]) == (9, True)
    off = to_chat_request({"model": "m", "input": "x", "reasoning": {"effort": "none"}}, []).chat
    assert (
        off["chat_template_kwargs"] == {"enable_thinking": False} and "reasoning_effort" not in off
    )
    json_mode = {"model": "m", "input": "x", "text": {"format": {"type": "json_object"}}}
    assert to_chat_request(json_mode, []).chat["response_format"] == {"type": "json_object"}


def _stream(
    body: dict[str, Any], chunks: list[dict[str, Any]]
) -> tuple[list[dict], ResponsesStream]:
    translator = ResponsesStream(to_chat_request(body, []), "m", "resp_1")
    raw = b"".join(translator.feed(c) for c in chunks) + translator.finish()
    return _events(raw), translator


def test_reasoning_streams_as_a_summary_and_round_trips_sealed() -> None:
    events, translator = _stream(CODEX_BODY, [_chunk(reasoning_content="Think "), _chunk(reasoning_content="hard."),
                                              _chunk(content="Done."), _finish("stop")])  # fmt: skip
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.reasoning_summary_part.added",
        "response.reasoning_summary_text.delta", "response.reasoning_summary_text.delta",
        "response.reasoning_summary_text.done", "response.reasoning_summary_part.done",
        "response.output_item.done",
        "response.output_item.added", "response.content_part.added", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed",
    ]  # fmt: skip
    reasoning, message = events[-1]["response"]["output"]
    assert reasoning["summary"] == [{"type": "summary_text", "text": "Think hard."}]
    assert message["content"][0]["text"] == "Done."
    assert events[-1]["response"]["metadata"] == {"cortex_server_only_tools": "web_search"}
    # The sealed reasoning sent back reaches the neuron with the assistant turn it preceded.
    again = {**CODEX_BODY, "input": [*CODEX_BODY["input"], {"type": "reasoning", "id": reasoning["id"],
             "summary": [], "encrypted_content": reasoning["encrypted_content"]}, message,
             {"role": "user", "content": "More."}]}  # fmt: skip
    assistant = to_chat_request(again, []).chat["messages"][-2]
    assert assistant == {
        "role": "assistant",
        "content": "Done.",
        "reasoning_content": "Think hard.",
    }
    assert translator.openai_usage == {"prompt_tokens": 7, "completion_tokens": 5}


def test_each_tool_kind_comes_back_as_its_own_item() -> None:
    calls = [("multi_agent_v1__spawn_agent", {"task": "x"}), ("apply_patch", {"input": "*** Begin"}),
             ("tool_search", {"query": "calendar"}), ("exec_command", {"cmd": "ls"})]  # fmt: skip
    chunks = [_chunk(tool_calls=[{"index": i, "id": f"call_{i}", "type": "function",
                                  "function": {"name": name, "arguments": json.dumps(args)}}])
              for i, (name, args) in enumerate(calls)] + [_finish("tool_calls")]  # fmt: skip
    events, _ = _stream(CODEX_BODY, chunks)
    output = events[-1]["response"]["output"]
    assert [(o["type"], o["call_id"]) for o in output] == [
        ("function_call", "call_0"), ("custom_tool_call", "call_1"),
        ("tool_search_call", "call_2"), ("function_call", "call_3"),
    ]  # fmt: skip
    assert (output[0]["namespace"], output[0]["name"]) == ("multi_agent_v1", "spawn_agent")
    assert output[1]["input"] == "*** Begin" and output[2]["arguments"] == {"query": "calendar"}
    kinds = [e["type"] for e in events]
    assert (
        kinds.count("response.output_item.added") == kinds.count("response.output_item.done") == 4
    )
    assert "response.custom_tool_call_input.done" in kinds
    # Sent back, each call and its output are a chat tool call and a tool message.
    history = [*CODEX_BODY["input"], *output,
               *({"type": "function_call_output", "call_id": o["call_id"], "output": "ok"} for o in output
                 if o["type"] == "function_call"),
               {"type": "custom_tool_call_output", "call_id": "call_1", "output": "patched"},
               {"type": "tool_search_output", "call_id": "call_2", "execution": "client", "tools": [FUNCTION | {"name": "calendar"}]}]  # fmt: skip
    translated = to_chat_request({**CODEX_BODY, "input": history}, [])
    assistant = translated.chat["messages"][3]
    assert [c["function"]["name"] for c in assistant["tool_calls"]] == [name for name, _ in calls]
    assert [m["role"] for m in translated.chat["messages"][4:]] == ["tool"] * 4
    assert "calendar" in translated.kit.callables  # a tool found by tool_search is offered


def test_a_local_shell_call() -> None:
    body = {"model": "m", "input": "ls", "tools": [{"type": "local_shell"}]}
    data = {"choices": [{"finish_reason": "tool_calls", "message": {"content": None, "tool_calls": [
        {"id": "call_9", "function": {"name": "local_shell", "arguments": '{"command": ["ls", "-l"]}'}}]}}]}  # fmt: skip
    [item] = from_chat_completion(data, to_chat_request(body, []), "m", "resp_1")["output"]
    assert (item["type"], item["call_id"], item["action"]["command"]) == (
        "local_shell_call",
        "call_9",
        ["ls", "-l"],
    )


def test_a_node_failing_mid_stream_fails_the_response() -> None:
    translator = ResponsesStream(to_chat_request({"model": "m", "input": "x"}, []), "m", "resp_1")
    raw = translator.feed(_chunk(content="Hal"))
    raw += translator.fail(ApiError(502, "node 'n1' failed while answering"))
    events = _events(raw)
    assert [e["type"] for e in events][-2:] == ["response.output_item.done", "response.failed"]
    assert events[-1]["response"]["status"] == "failed"
    assert events[-1]["response"]["error"]["message"] == "node 'n1' failed while answering"


async def test_the_store_is_bounded_and_forgets_after_its_ttl() -> None:
    now = [0.0]
    state = MemoryState(clock=lambda: now[0])
    store = ResponseStore(state, ResponsesSection(store_max_responses=2, store_ttl_seconds=10))
    for name in ("a", "b", "c"):
        await store.put({"id": name, "output": []}, [], [])
    assert (await store.get("a"), state.stored()) == (None, 2)  # the oldest went first
    now[0] = 5.0
    await store.put({"id": "d", "output": []}, [], [])
    now[0] = 10.5  # b and c are older than the TTL, d is not
    assert [await store.get(k) is not None for k in "bcd"] == [False, False, True]
    assert await store.delete("d") and not await store.delete("d")
