"""Bad `/v1/messages` bodies with the status and the message fragment each must produce.

Shared by the pure translation tests and the end-to-end table against the gateway.
"""

from __future__ import annotations

from typing import Any


def base_request(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "m",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "Hello"}],
    }
    body.update(overrides)
    return body


def _without(key: str) -> dict[str, Any]:
    body = base_request()
    del body[key]
    return body


_TOOL = {"name": "t", "input_schema": {"type": "object"}}
_TOOL_USE = {"type": "tool_use", "id": "toolu_1", "name": "t", "input": {}}
_IMAGE = {
    "type": "image",
    "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="},
}
_PDF = {
    "type": "document",
    "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
}

# (name, body, status, fragment of the error message)
BAD_REQUESTS: list[tuple[str, dict[str, Any], int, str]] = [
    ("missing max_tokens", _without("max_tokens"), 400, "max_tokens"),
    ("max_tokens not integer", base_request(max_tokens="16"), 400, "max_tokens"),
    ("max_tokens zero", base_request(max_tokens=0), 400, "max_tokens"),
    ("missing messages", _without("messages"), 400, "messages"),
    ("missing model", _without("model"), 400, "model"),
    ("empty messages", base_request(messages=[]), 400, "messages"),
    (
        "first message assistant",
        base_request(
            messages=[{"role": "assistant", "content": "Hi"}, {"role": "user", "content": "x"}]
        ),
        400,
        "first message",
    ),
    (
        "unknown role",
        base_request(messages=[{"role": "robot", "content": "x"}]),
        400,
        "messages.0.role",
    ),
    (
        "unknown block type",
        base_request(messages=[{"role": "user", "content": [{"type": "hologram", "text": "x"}]}]),
        400,
        "messages.0.content.0",
    ),
    (
        "image block",
        base_request(
            messages=[
                {"role": "user", "content": [{"type": "text", "text": "what is it?"}, _IMAGE]}
            ]
        ),
        400,
        "messages.0.content.1: image",
    ),
    (
        "image in a merged turn keeps its own path",
        base_request(
            messages=[
                {"role": "user", "content": "first"},
                {"role": "user", "content": [{"type": "text", "text": "x"}, _IMAGE]},
            ]
        ),
        400,
        "messages.1.content.1: image",
    ),
    (
        "document block",
        base_request(messages=[{"role": "user", "content": [_PDF]}]),
        400,
        "messages.0.content.0: document",
    ),
    (
        "image inside tool_result",
        base_request(
            messages=[
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": [_TOOL_USE]},
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [_IMAGE]}
                    ],
                },
            ]
        ),
        400,
        "messages.2.content.0.content.0: image",
    ),
    (
        "text block without text",
        base_request(messages=[{"role": "user", "content": [{"type": "text"}]}]),
        400,
        "messages.0.content.0.text",
    ),
    (
        "empty content array",
        base_request(messages=[{"role": "user", "content": []}]),
        400,
        "messages.0.content",
    ),
    (
        "tool_result without tool_use",
        base_request(
            messages=[
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"}],
                }
            ]
        ),
        400,
        "toolu_9",
    ),
    (
        "tool_use left unanswered",
        base_request(
            messages=[
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": [_TOOL_USE]},
                {"role": "user", "content": "y"},
            ]
        ),
        400,
        "toolu_1",
    ),
    (
        "tool_use input not object",
        base_request(
            messages=[
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": [{**_TOOL_USE, "input": "{}"}]},
                {"role": "user", "content": "y"},
            ]
        ),
        400,
        "messages.1.content.0.input",
    ),
    ("system not text", base_request(system=[{"type": "image"}]), 400, "system.0"),
    ("tools not array", base_request(tools={"name": "t"}), 400, "tools"),
    (
        "tool without name",
        base_request(tools=[{"input_schema": {"type": "object"}}]),
        400,
        "tools.0.name",
    ),
    ("tool bad name", base_request(tools=[{**_TOOL, "name": "has space"}]), 400, "tools.0.name"),
    ("tool without schema", base_request(tools=[{"name": "t"}]), 400, "tools.0.input_schema"),
    (
        "tool schema not object type",
        base_request(tools=[{**_TOOL, "input_schema": {"type": "string"}}]),
        400,
        "tools.0.input_schema.type",
    ),
    ("duplicate tool names", base_request(tools=[_TOOL, _TOOL]), 400, "unique"),
    (
        "server tool",
        base_request(tools=[{"type": "web_search_20250305", "name": "web_search"}]),
        400,
        "tools.0.type: 'web_search_20250305' is a server tool, which this server cannot run",
    ),
    (
        "schema-less client tool",
        base_request(tools=[{"type": "bash_20250124", "name": "bash"}]),
        400,
        "tools.0.type",
    ),
    (
        "tool_choice unknown type",
        base_request(tools=[_TOOL], tool_choice={"type": "sometimes"}),
        400,
        "tool_choice.type",
    ),
    (
        "tool_choice unknown tool",
        base_request(tools=[_TOOL], tool_choice={"type": "tool", "name": "nope"}),
        400,
        "tool_choice.name",
    ),
    (
        "tool_choice any without tools",
        base_request(tool_choice={"type": "any"}),
        400,
        "tool_choice",
    ),
    ("tool_choice not object", base_request(tools=[_TOOL], tool_choice="auto"), 400, "tool_choice"),
    ("temperature out of range", base_request(temperature=1.5), 400, "temperature"),
    ("top_k negative", base_request(top_k=-1), 400, "top_k"),
    ("stop_sequences not strings", base_request(stop_sequences=["ok", 3]), 400, "stop_sequences.1"),
    ("unknown field", base_request(frobnicate=True), 400, "frobnicate"),
    ("container", base_request(container="cntr_1"), 400, "container: this server cannot run"),
    (
        "mcp_servers",
        base_request(mcp_servers=[{"type": "url", "url": "https://example.com", "name": "x"}]),
        400,
        "mcp_servers: this server cannot run",
    ),
    (
        "code execution tool",
        base_request(tools=[{"type": "code_execution_20250825", "name": "code_execution"}]),
        400,
        "tools.0.type: 'code_execution_20250825' is a server tool, which this server cannot run",
    ),
    ("thinking type", base_request(thinking={"type": "sometimes"}), 400, "thinking.type"),
    (
        "thinking budget not below max_tokens",
        base_request(thinking={"type": "enabled", "budget_tokens": 16}),
        400,
        "thinking.budget_tokens",
    ),
    (
        "thinking budget missing",
        base_request(thinking={"type": "enabled"}),
        400,
        "thinking.budget_tokens",
    ),
    ("effort", base_request(output_config={"effort": "extreme"}), 400, "output_config.effort"),
    (
        "output format type",
        base_request(output_config={"format": {"type": "xml"}}),
        400,
        "output_config.format.type",
    ),
    ("output_config field", base_request(output_config={"tone": "dry"}), 400, "output_config.tone"),
    (
        "context edit type",
        base_request(context_management={"edits": [{"type": "forget_everything"}]}),
        400,
        "context_management.edits.0.type",
    ),
    (
        "prefill with a tool call",
        base_request(
            messages=[
                {"role": "user", "content": "x"},
                {"role": "assistant", "content": [_TOOL_USE]},
            ]
        ),
        400,
        "prefill",
    ),
    ("stream not boolean", base_request(stream="yes"), 400, "stream"),
]
