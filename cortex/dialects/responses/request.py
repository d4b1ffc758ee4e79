"""A `POST /v1/responses` body → the neuron's chat completions body, checked field by field.

Fields are honoured, accepted without effect where a local model has nothing to do
with them (billing tiers, client metadata, `truncation`, `verbosity`), or refused with a
400 naming the field — never dropped when they would change the answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cortex.dialects.responses.items import to_messages
from cortex.dialects.responses.tools import ToolKit, build_toolkit, chat_tool_choice
from cortex.dialects.shared import bad, expect, one_of, optional

_NO_EFFECT = {
    "user",
    "service_tier",
    "client_metadata",
    "safety_identifier",
    "metadata",
    "prompt_cache_retention",
    "stream_options",
    "max_tool_calls",
    "truncation",
}
_FIELDS = {
    "model",
    "input",
    "instructions",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "max_output_tokens",
    "temperature",
    "top_p",
    "text",
    "reasoning",
    "include",
    "store",
    "previous_response_id",
    "prompt_cache_key",
    "stream",
    "background",
    "top_logprobs",
}
# `include` values about server-run tools or images: nothing of theirs is ever produced here.
_INCLUDES = {
    "reasoning.encrypted_content",
    "web_search_call.results",
    "web_search_call.action.sources",
    "file_search_call.results",
    "code_interpreter_call.outputs",
    "computer_call_output.output.image_url",
    "message.input_image.image_url",
}
_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh")


@dataclass
class Translated:
    """The chat body for the neuron and what is needed to answer in the Responses shape."""

    chat: dict[str, Any]
    kit: ToolKit
    stream: bool
    store: bool
    encrypted_reasoning: bool
    echo: dict[str, Any] = field(default_factory=dict)  # request fields the response repeats


def _check(body: dict[str, Any]) -> None:
    for key in body:
        if key not in _FIELDS | _NO_EFFECT:
            raise bad(key, "unsupported field")
    expect(body.get("model"), str, "model", "a model id string")
    if body.get("background"):
        raise bad("background", "background responses are not supported; stream instead")
    if optional(body, "top_logprobs", int, "an integer"):
        raise bad("top_logprobs", "log probabilities are not supported by the Responses dialect")
    metadata = optional(body, "metadata", dict, "an object of strings") or {}
    for key, value in metadata.items():
        expect(value, str, f"metadata.{key}", "a string")
    if body.get("truncation") is not None:
        one_of(body["truncation"], ("auto", "disabled"), "truncation")


def _number(body: dict[str, Any], key: str, high: float) -> float | None:
    value = optional(body, key, (int, float), "a number")
    if value is not None and not 0 <= value <= high:
        raise bad(key, f"must be between 0 and {high:g}, got {value}")
    return value


def _format(text: Any) -> dict[str, Any] | None:
    """`text.format` as the chat `response_format` (None: plain text)."""
    text = expect(text or {}, dict, "text", "an object")
    if text.get("verbosity") is not None:
        one_of(text["verbosity"], ("low", "medium", "high"), "text.verbosity")
    fmt = expect(text.get("format") or {"type": "text"}, dict, "text.format", "an object")
    kind = one_of(fmt.get("type"), ("text", "json_object", "json_schema"), "text.format.type")
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    schema = {
        "name": expect(fmt.get("name"), str, "text.format.name", "a string"),
        "schema": expect(fmt.get("schema"), dict, "text.format.schema", "a JSON schema"),
    }
    for key in ("strict", "description"):
        if fmt.get(key) is not None:
            schema[key] = fmt[key]
    return {"type": "json_schema", "json_schema": schema}


def _reasoning(body: dict[str, Any], chat: dict[str, Any]) -> None:
    reasoning = optional(body, "reasoning", dict, "an object") or {}
    summary = reasoning.get("summary") or reasoning.get("generate_summary")
    if summary is not None:
        one_of(summary, ("auto", "concise", "detailed"), "reasoning.summary")
    effort = reasoning.get("effort")
    if effort is None:
        return
    one_of(effort, _EFFORTS, "reasoning.effort")
    if effort == "none":
        chat["chat_template_kwargs"] = {"enable_thinking": False}
        return
    chat["chat_template_kwargs"] = {"enable_thinking": True}
    chat["reasoning_effort"] = "high" if effort == "xhigh" else effort


def _includes(body: dict[str, Any]) -> bool:
    include = optional(body, "include", list, "an array of strings") or []
    for i, value in enumerate(include):
        if value not in _INCLUDES:
            raise bad(f"include.{i}", f"unsupported value {value!r}")
    return "reasoning.encrypted_content" in include


def to_chat_request(body: dict[str, Any], history: list[dict[str, Any]]) -> Translated:
    """Translate one request; `history` holds the items of its `previous_response_id` chain."""
    _check(body)
    raw_input = body.get("input")
    if raw_input is None:
        raise bad("input", "field required")
    if isinstance(raw_input, str):
        items = [{"type": "message", "role": "user", "content": raw_input}]
    else:
        items = expect(raw_input, list, "input", "a string or an array of items")
    instructions = optional(body, "instructions", str, "a string")
    kit = build_toolkit(body.get("tools"))
    messages = to_messages(instructions, history + items, kit, first=len(history))
    chat: dict[str, Any] = {"model": body["model"], "messages": messages}
    stream = bool(optional(body, "stream", bool, "a boolean"))
    if stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    max_tokens = optional(body, "max_output_tokens", int, "an integer")
    if max_tokens is not None:
        if max_tokens < 1:
            raise bad("max_output_tokens", "must be at least 1")
        chat["max_tokens"] = max_tokens
        chat["truncate_max_tokens"] = True  # capped at what the context leaves, as OpenAI does
    for key, high in (("temperature", 2.0), ("top_p", 1.0)):
        value = _number(body, key, high)
        if value is not None:
            chat[key] = value
    response_format = _format(body.get("text"))
    if response_format is not None:
        chat["response_format"] = response_format
    _reasoning(body, chat)
    choice = chat_tool_choice(body.get("tool_choice"), kit)
    if kit.chat_tools:
        chat["tools"] = kit.chat_tools
    if choice is not None and kit.chat_tools:
        chat["tool_choice"] = choice
    parallel = optional(body, "parallel_tool_calls", bool, "a boolean")
    if parallel is not None and kit.chat_tools:
        chat["parallel_tool_calls"] = parallel
    for key in ("prompt_cache_key", "user"):  # routing affinity keys stay in the body
        if optional(body, key, str, "a string") is not None:
            chat[key] = body[key]
    echo = {
        key: body.get(key)
        for key in (
            "instructions",
            "max_output_tokens",
            "temperature",
            "top_p",
            "tool_choice",
            "tools",
            "text",
            "reasoning",
            "previous_response_id",
            "prompt_cache_key",
            "user",
            "service_tier",
            "truncation",
            "metadata",
            "parallel_tool_calls",
        )
    }
    store = optional(body, "store", bool, "a boolean")
    return Translated(chat, kit, stream, True if store is None else store, _includes(body), echo)
