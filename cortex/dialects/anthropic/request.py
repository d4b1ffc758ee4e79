"""Anthropic Messages request → OpenAI chat completions request (and `/tokenize` body).

The neuron speaks OpenAI only, so the gateway turns every Anthropic request into
an OpenAI one (the answer goes back through `anthropic_response` and
`anthropic_stream`). Anything the neuron cannot honour is rejected with a 400
that names the offending field, never dropped, so a client never gets an answer
to a question it did not ask.
"""

from __future__ import annotations

from typing import Any

from cortex.dialects.anthropic.context_edits import edits_of
from cortex.dialects.anthropic.messages import is_prefill, to_openai_messages
from cortex.dialects.anthropic.options import reasoning_fields
from cortex.dialects.anthropic.tools import with_tools
from cortex.dialects.shared import bad, expect

# Fields that change nothing for a local model (prompt caching, billing tiers, regions).
_NO_OP_FIELDS = {"cache_control", "service_tier", "inference_geo", "speed", "diagnostics"}
# Features Anthropic's servers run (sandboxes, remote MCP servers): refused by name.
_SERVER_FIELDS = {"container", "mcp_servers"}
_COMMON = {"model", "messages", "system", "tools", "tool_choice", "thinking", "output_config",
           "context_management"}  # fmt: skip
_REQUEST_FIELDS = (
    _COMMON
    | _NO_OP_FIELDS
    | {
        "max_tokens",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "metadata",
    }
)
_COUNT_FIELDS = _COMMON | _NO_OP_FIELDS


def _number(body: dict[str, Any], key: str, low: float, high: float) -> float | None:
    if body.get(key) is None:
        return None
    value = expect(body[key], (int, float), key, "a number")
    if not low <= value <= high:
        raise bad(key, f"must be between {low:g} and {high:g}, got {value}")
    return value


def _check_fields(body: dict[str, Any], allowed: set[str]) -> None:
    for key in body:
        if key in _SERVER_FIELDS:
            raise bad(key, f"this server cannot run {key} (a feature of Anthropic's own servers)")
        if key not in allowed:
            raise bad(key, "unsupported field")
    expect(body.get("model"), str, "model", "a model id string")
    edits_of(body)  # applied before translation (context_edits.apply_edits); checked here


def _conversation(body: dict[str, Any], max_tokens: int | None) -> dict[str, Any]:
    """Model, messages (with prefill), tools and the reasoning fields: what both
    `messages` and `count_tokens` render."""
    out: dict[str, Any] = {"model": body["model"], "messages": to_openai_messages(body)}
    if is_prefill(body):
        if out["messages"][-1].get("tool_calls"):
            raise bad("messages", "an assistant prefill (the last message) must be text only")
        out["continue_final_message"] = True
    out.update(reasoning_fields(body, max_tokens))
    return with_tools(body, out)


def to_openai_request(body: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic `POST /v1/messages` body as an OpenAI chat completions body."""
    _check_fields(body, _REQUEST_FIELDS)
    if "max_tokens" not in body:
        raise bad("max_tokens", "field required")
    max_tokens = expect(body["max_tokens"], int, "max_tokens", "an integer")
    if max_tokens < 1:
        raise bad("max_tokens", "must be at least 1")
    metadata = expect(body.get("metadata") or {}, dict, "metadata", "an object")
    if metadata.get("user_id") is not None:
        # Accepted for compatibility; an opaque end-user id has no use on a local model.
        expect(metadata["user_id"], str, "metadata.user_id", "a string")
    out = _conversation(body, max_tokens)
    # More than the context leaves is capped there (stop_reason model_context_window_exceeded).
    out["max_tokens"], out["truncate_max_tokens"] = max_tokens, True
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
            raise bad("top_k", "must be at least 0")
        out["top_k"] = top_k
    return out


def to_tokenize_request(body: dict[str, Any]) -> dict[str, Any]:
    """A `count_tokens` body as the neuron's `/tokenize` body (the prompt it would render)."""
    _check_fields(body, _COUNT_FIELDS)
    out = _conversation(body, None)
    out.pop("thinking_budget", None)
    out.pop("response_format", None)
    return out


def count_request(body: dict[str, Any]) -> dict[str, Any]:
    """The `count_tokens` body for the prompt a `messages` body renders."""
    return {key: value for key, value in body.items() if key in _COUNT_FIELDS}


def stop_sequences(body: dict[str, Any]) -> list[str]:
    stops = expect(body.get("stop_sequences") or [], list, "stop_sequences", "an array of strings")
    for i, stop in enumerate(stops):
        if not isinstance(stop, str) or not stop:
            raise bad(f"stop_sequences.{i}", "expected a non-empty string")
    return stops
