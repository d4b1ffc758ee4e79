"""Anthropic Messages request → OpenAI chat completions request (and `/tokenize` body).

The neuron speaks OpenAI only, so the gateway turns every Anthropic request into
an OpenAI one (the answer goes back through `anthropic_response` and
`anthropic_stream`). Anything the neuron cannot honour is rejected with a 400
that names the offending field, never dropped, so a client never gets an answer
to a question it did not ask.
"""

from __future__ import annotations

import re
from typing import Any

from cortex.dialects.anthropic.messages import bad, expect, to_openai_messages

_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
# Fields that change nothing for a local model (prompt caching, billing tiers, regions).
_NO_OP_FIELDS = {"cache_control", "service_tier", "inference_geo", "speed", "diagnostics"}
_REQUEST_FIELDS = {
    "model",
    "messages",
    "max_tokens",
    "system",
    "stop_sequences",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "tools",
    "tool_choice",
    "metadata",
    "thinking",
} | _NO_OP_FIELDS
_COUNT_FIELDS = {"model", "messages", "system", "tools", "tool_choice", "thinking"} | _NO_OP_FIELDS


def _number(body: dict[str, Any], key: str, low: float, high: float) -> float | None:
    if body.get(key) is None:
        return None
    value = expect(body[key], (int, float), key, "a number")
    if not low <= value <= high:
        raise bad(f"{key}: must be between {low:g} and {high:g}, got {value}")
    return value


def to_openai_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    tools, names = [], set()
    for i, tool in enumerate(expect(body.get("tools") or [], list, "tools", "an array of tools")):
        at = f"tools.{i}"
        if expect(tool, dict, at, "an object").get("type", "custom") not in ("custom", None):
            raise bad(
                f"{at}.type: server tool {tool['type']!r} is not supported; only custom tools are"
            )
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise bad(f"{at}.name: must match {_TOOL_NAME.pattern}")
        if name in names:
            raise bad(f"{at}.name: tool names must be unique ({name!r} repeats)")
        names.add(name)
        schema = expect(
            tool.get("input_schema"), dict, f"{at}.input_schema", "a JSON schema object"
        )
        if schema.get("type") != "object":
            raise bad(f"{at}.input_schema.type: must be 'object'")
        function = {"name": name, "parameters": schema}
        if tool.get("description") is not None:
            function["description"] = expect(
                tool["description"], str, f"{at}.description", "a string"
            )
        tools.append({"type": "function", "function": function})
    return tools


def _tool_choice(body: dict[str, Any], names: set[str], out: dict[str, Any]) -> None:
    choice = body.get("tool_choice")
    if choice is None:
        return
    kind = expect(choice, dict, "tool_choice", "an object").get("type")
    if kind not in ("auto", "any", "tool", "none"):
        raise bad(f"tool_choice.type: must be one of 'auto', 'any', 'tool', 'none', got {kind!r}")
    if not names:
        if kind in ("any", "tool"):
            raise bad(f"tool_choice: type {kind!r} needs at least one tool in `tools`")
        return  # auto/none without tools: plain chat
    if kind == "tool":
        name = expect(choice.get("name"), str, "tool_choice.name", "a string")
        if name not in names:
            raise bad(f"tool_choice.name: no tool named {name!r} in `tools`")
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        out["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[kind]
    if kind != "none" and expect(
        choice.get("disable_parallel_tool_use", False),
        bool,
        "tool_choice.disable_parallel_tool_use",
        "a boolean",
    ):
        out["parallel_tool_calls"] = False


def _check_fields(body: dict[str, Any], allowed: set[str]) -> None:
    for key in body:
        if key not in allowed:
            raise bad(f"{key}: unsupported field")
    expect(body.get("model"), str, "model", "a model id string")
    thinking = body.get("thinking")
    if (
        thinking is not None
        and expect(thinking, dict, "thinking", "an object").get("type") != "disabled"
    ):
        raise bad("thinking: extended thinking is not supported by this model")


def _with_tools(body: dict[str, Any], out: dict[str, Any]) -> dict[str, Any]:
    tools = to_openai_tools(body)
    if tools:
        out["tools"] = tools
    _tool_choice(body, {tool["function"]["name"] for tool in tools}, out)
    return out


def to_openai_request(body: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic `POST /v1/messages` body as an OpenAI chat completions body."""
    _check_fields(body, _REQUEST_FIELDS)
    if "max_tokens" not in body:
        raise bad("max_tokens: field required")
    max_tokens = expect(body["max_tokens"], int, "max_tokens", "an integer")
    if max_tokens < 1:
        raise bad("max_tokens: must be at least 1")
    metadata = expect(body.get("metadata") or {}, dict, "metadata", "an object")
    if metadata.get("user_id") is not None:
        # Accepted for compatibility; an opaque end-user id has no use on a local model.
        expect(metadata["user_id"], str, "metadata.user_id", "a string")
    out: dict[str, Any] = {
        "model": body["model"],
        "messages": to_openai_messages(body),
        "max_tokens": max_tokens,
    }
    stream = expect(body.get("stream", False), bool, "stream", "a boolean")
    if stream:
        out["stream"] = True
        # Usage in every chunk: message_start then carries the real input_tokens.
        out["stream_options"] = {"include_usage": True, "continuous_usage_stats": True}
    stops = stop_sequences(body)
    if stops:
        out["stop"] = stops
    for key, high in (("temperature", 1.0), ("top_p", 1.0)):
        value = _number(body, key, 0.0, high)
        if value is not None:
            out[key] = value
    if body.get("top_k") is not None:
        top_k = expect(body["top_k"], int, "top_k", "an integer")
        if top_k < 0:
            raise bad("top_k: must be at least 0")
        out["top_k"] = top_k
    return _with_tools(body, out)


def to_tokenize_request(body: dict[str, Any]) -> dict[str, Any]:
    """A `count_tokens` body as the neuron's `/tokenize` body (the prompt it would render)."""
    _check_fields(body, _COUNT_FIELDS)
    return _with_tools(body, {"model": body["model"], "messages": to_openai_messages(body)})


def stop_sequences(body: dict[str, Any]) -> list[str]:
    stops = expect(body.get("stop_sequences") or [], list, "stop_sequences", "an array of strings")
    for i, stop in enumerate(stops):
        if not isinstance(stop, str) or not stop:
            raise bad(f"stop_sequences.{i}: expected a non-empty string")
    return stops
